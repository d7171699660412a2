// Chat templates: turn a conversation into the prompt text a chat-tuned model was trained on.
// Models ship their template as a Jinja string (GGUF tokenizer.chat_template, or
// tokenizer_config.json's chat_template). strata does not run Jinja; it recognises the handful of
// template families in wide use by their distinctive markers and renders them natively, falling
// back to a plain "User: ...\nAssistant:" transcript when there is no template or it is unknown.
//
// The rendered text never starts with the BOS token: the tokenizer adds it (add_bos_default), so
// a template's leading bos_token would otherwise be doubled. Encode the result with
// parse_special = true so markers like <|im_start|> become their token ids.
#pragma once
#include <string>
#include <vector>

namespace strata {

enum class ChatFamily { Plain, ChatML, Llama2, Llama3, Mistral, Gemma, Phi3, Zephyr };

struct ChatMessage {
  std::string role;  // "system" (or "developer"), "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatFamily f = ChatFamily::Plain) : family_(f) {}

  // The family a Jinja template string belongs to; Plain when empty or unrecognised.
  static ChatTemplate detect(const std::string& jinja);
  // --chat-template NAME: chatml, llama2, llama3, mistral, gemma, phi3, zephyr, plain.
  // Throws strata::Error listing the names for anything else.
  static ChatTemplate named(const std::string& name);
  static std::vector<std::string> names();

  ChatFamily family() const { return family_; }
  const char* name() const;

  // Renders the conversation; with add_generation_prompt it ends where the assistant's reply
  // begins. bos/eos: the tokenizer's token texts, used by the families that write them between
  // turns (Llama-2, Mistral, Zephyr).
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                    const std::string& bos = "<s>", const std::string& eos = "</s>") const;

  // Text that ends the assistant's turn, for models that do not know the turn-end marker as one
  // token (the tokenizer already stops on end-of-turn tokens it knows).
  std::vector<std::string> stop_strings(const std::string& eos = "</s>") const;

 private:
  ChatFamily family_;
};

}  // namespace strata
