#include "engine/chat_template.h"

#include <array>
#include <utility>

#include "core/error.h"

namespace strata {
namespace {

struct Named {
  const char* name;
  ChatFamily family;
};
constexpr std::array<Named, 8> kNames = {{{"plain", ChatFamily::Plain},
                                          {"chatml", ChatFamily::ChatML},
                                          {"llama2", ChatFamily::Llama2},
                                          {"llama3", ChatFamily::Llama3},
                                          {"mistral", ChatFamily::Mistral},
                                          {"gemma", ChatFamily::Gemma},
                                          {"phi3", ChatFamily::Phi3},
                                          {"zephyr", ChatFamily::Zephyr}}};

bool has(const std::string& s, const char* marker) {
  return s.find(marker) != std::string::npos;
}

bool is_system(const ChatMessage& m) {
  return m.role == "system" || m.role == "developer";
}

// Jinja's `| trim` / Python's strip(): the templates that use it drop outer whitespace.
std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Families without a system turn fold the system text into the first user message, as the
// newer Gemma and Mistral templates do. Returns the messages with system entries removed.
std::vector<ChatMessage> fold_system(const std::vector<ChatMessage>& in, const std::string& sep) {
  std::string sys;
  std::vector<ChatMessage> out;
  for (const auto& m : in) {
    if (is_system(m)) {
      if (!sys.empty()) sys += "\n\n";
      sys += m.content;
      continue;
    }
    out.push_back(m);
  }
  if (sys.empty()) return out;
  for (auto& m : out)
    if (m.role == "user") {
      m.content = sys + sep + m.content;
      return out;
    }
  out.insert(out.begin(), ChatMessage{"user", sys});
  return out;
}

std::string render_plain(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string s;
  for (const auto& m : msgs) {
    if (is_system(m))
      s += m.content + "\n\n";
    else if (m.role == "assistant")
      s += "Assistant: " + m.content + "\n";
    else
      s += "User: " + m.content + "\n";
  }
  if (gen) s += "Assistant:";
  return s;
}

std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string s;
  for (const auto& m : msgs) s += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) s += "<|im_start|>assistant\n";
  return s;
}

// [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] ...
std::string render_llama2(const std::vector<ChatMessage>& in, const std::string& bos,
                          const std::string& eos) {
  std::string sys;
  std::vector<ChatMessage> msgs;
  for (const auto& m : in) {
    if (is_system(m) && msgs.empty() && sys.empty())
      sys = m.content;
    else
      msgs.push_back(m);
  }
  if (msgs.empty() && !sys.empty()) msgs.push_back({"user", ""});
  std::string s;
  bool first_user = true;
  for (const auto& m : msgs) {
    if (m.role == "assistant") {
      s += " " + trim(m.content) + " " + eos;
      continue;
    }
    std::string content = m.content;
    if (first_user && !sys.empty()) content = "<<SYS>>\n" + sys + "\n<</SYS>>\n\n" + content;
    if (!s.empty()) s += bos;
    s += "[INST] " + trim(content) + " [/INST]";
    first_user = false;
  }
  return s;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string s;
  for (const auto& m : msgs)
    s += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
  if (gen) s += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return s;
}

// [INST] user [/INST]answer</s>[INST] ...
std::string render_mistral(const std::vector<ChatMessage>& in, const std::string& eos) {
  std::string s;
  for (const auto& m : fold_system(in, "\n\n")) {
    if (m.role == "assistant")
      s += m.content + eos;
    else
      s += "[INST] " + m.content + " [/INST]";
  }
  return s;
}

std::string render_gemma(const std::vector<ChatMessage>& in, bool gen) {
  std::string s;
  for (const auto& m : fold_system(in, "\n\n")) {
    const std::string role = m.role == "assistant" ? "model" : "user";
    s += "<start_of_turn>" + role + "\n" + trim(m.content) + "<end_of_turn>\n";
  }
  if (gen) s += "<start_of_turn>model\n";
  return s;
}

// Phi-3 ends turns with <|end|>, Zephyr with the EOS token; otherwise the same shape.
std::string render_tagged(const std::vector<ChatMessage>& msgs, bool gen, const std::string& end) {
  std::string s;
  for (const auto& m : msgs) {
    s += is_system(m) ? "<|system|>" : m.role == "assistant" ? "<|assistant|>" : "<|user|>";
    s += "\n";
    s += m.content;
    s += end;
    s += "\n";
  }
  if (gen) s += "<|assistant|>\n";
  return s;
}

}  // namespace

ChatTemplate ChatTemplate::detect(const std::string& t) {
  if (has(t, "<|im_start|>")) return ChatTemplate(ChatFamily::ChatML);
  if (has(t, "<|start_header_id|>")) return ChatTemplate(ChatFamily::Llama3);
  if (has(t, "<start_of_turn>")) return ChatTemplate(ChatFamily::Gemma);
  if (has(t, "<|assistant|>") && has(t, "<|end|>")) return ChatTemplate(ChatFamily::Phi3);
  if (has(t, "<|assistant|>") || has(t, "<|user|>")) return ChatTemplate(ChatFamily::Zephyr);
  if (has(t, "[INST]"))
    return ChatTemplate(has(t, "<<SYS>>") ? ChatFamily::Llama2 : ChatFamily::Mistral);
  return ChatTemplate(ChatFamily::Plain);
}

ChatTemplate ChatTemplate::named(const std::string& name) {
  for (const auto& n : kNames)
    if (name == n.name) return ChatTemplate(n.family);
  std::string list;
  for (const auto& n : kNames) {
    if (!list.empty()) list += ", ";
    list += n.name;
  }
  fail("unknown chat template '{}' (known: {})", name, list);
}

std::vector<std::string> ChatTemplate::names() {
  std::vector<std::string> out;
  for (const auto& n : kNames) out.emplace_back(n.name);
  return out;
}

const char* ChatTemplate::name() const {
  for (const auto& n : kNames)
    if (n.family == family_) return n.name;
  return "plain";
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& msgs, bool gen,
                                const std::string& bos, const std::string& eos) const {
  switch (family_) {
    case ChatFamily::ChatML:
      return render_chatml(msgs, gen);
    case ChatFamily::Llama2:
      return render_llama2(msgs, bos, eos);
    case ChatFamily::Llama3:
      return render_llama3(msgs, gen);
    case ChatFamily::Mistral:
      return render_mistral(msgs, eos);
    case ChatFamily::Gemma:
      return render_gemma(msgs, gen);
    case ChatFamily::Phi3:
      return render_tagged(msgs, gen, "<|end|>");
    case ChatFamily::Zephyr:
      return render_tagged(msgs, gen, eos);
    case ChatFamily::Plain:
      break;
  }
  return render_plain(msgs, gen);
}

std::vector<std::string> ChatTemplate::stop_strings(const std::string& eos) const {
  switch (family_) {
    case ChatFamily::ChatML:
      return {"<|im_end|>"};
    case ChatFamily::Llama2:
    case ChatFamily::Mistral:
      return {eos, "[INST]"};
    case ChatFamily::Llama3:
      return {"<|eot_id|>"};
    case ChatFamily::Gemma:
      return {"<end_of_turn>"};
    case ChatFamily::Phi3:
      return {"<|end|>"};
    case ChatFamily::Zephyr:
      return {eos, "<|user|>"};
    case ChatFamily::Plain:
      break;
  }
  return {"\nUser:"};
}

}  // namespace strata
