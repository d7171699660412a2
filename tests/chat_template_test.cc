// Chat templates: recognition of each family from its Jinja text, and the exact prompt each
// renders (written out by hand from the families' published templates), system-message
// handling, stop strings, and the plain fallback.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "engine/chat_template.h"

namespace strata {
namespace {

const std::vector<ChatMessage> kConv = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Name a color."}};
const std::vector<ChatMessage> kNoSystem = {
    {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Name a color."}};

std::string render(ChatFamily f, const std::vector<ChatMessage>& m, bool gen = true) {
  return ChatTemplate(f).apply(m, gen, "<s>", "</s>");
}

TEST(ChatTemplate, DetectsFamiliesByMarkers) {
  struct Case {
    const char* jinja;
    ChatFamily want;
  };
  const Case cases[] = {
      {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
       "message['content'] + "
       "'<|im_end|>' + '\\n'}}{% endfor %}",
       ChatFamily::ChatML},
      {"{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
       "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}",
       ChatFamily::Llama3},
      {"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
       "messages[0]['content'] + "
       "'\\n<</SYS>>\\n\\n' %}{% endif %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' "
       "}}",
       ChatFamily::Llama2},
      {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' "
       "+ "
       "message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token}}{% endif "
       "%}{% endfor %}",
       ChatFamily::Mistral},
      {"{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' + "
       "message['content'] | "
       "trim + '<end_of_turn>\\n' }}{% endfor %}",
       ChatFamily::Gemma},
      {"{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\\n' + "
       "message['content'] + "
       "'<|end|>\\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + "
       "message['content'] + "
       "'<|end|>\\n'}}{% endif %}{% endfor %}",
       ChatFamily::Phi3},
      {"{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
       "message['content'] + "
       "eos_token }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n'  + "
       "message['content'] + "
       "eos_token }}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>' }}{% "
       "endif %}"
       "{% endfor %}",
       ChatFamily::Zephyr},
      {"", ChatFamily::Plain},
      {"{{ messages | some_unknown_format }}", ChatFamily::Plain},
  };
  for (const Case& c : cases) EXPECT_EQ(ChatTemplate::detect(c.jinja).family(), c.want) << c.jinja;
}

TEST(ChatTemplate, NamesOverrideAndUnknownNameFails) {
  for (const std::string& n : ChatTemplate::names())
    EXPECT_STREQ(ChatTemplate::named(n).name(), n.c_str());
  EXPECT_EQ(ChatTemplate::named("gemma").family(), ChatFamily::Gemma);
  try {
    ChatTemplate::named("vicuna");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown chat template 'vicuna'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("chatml"), std::string::npos);
  }
}

TEST(ChatTemplate, ChatML) {
  EXPECT_EQ(render(ChatFamily::ChatML, kConv),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nName a color.<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(ChatFamily::ChatML, {{"user", "Hi"}}, false),
            "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(ChatTemplate(ChatFamily::ChatML).stop_strings(),
            std::vector<std::string>{"<|im_end|>"});
}

TEST(ChatTemplate, Llama2PutsSystemInsideTheFirstInstruction) {
  EXPECT_EQ(render(ChatFamily::Llama2, kConv),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Name a color. "
            "[/INST]");
  EXPECT_EQ(render(ChatFamily::Llama2, kNoSystem),
            "[INST] Hi [/INST] Hello! </s><s>[INST] Name a color. [/INST]");
  // The tokenizer's own BOS/EOS texts are used between turns.
  EXPECT_EQ(ChatTemplate(ChatFamily::Llama2).apply(kNoSystem, true, "<B>", "<E>"),
            "[INST] Hi [/INST] Hello! <E><B>[INST] Name a color. [/INST]");
  EXPECT_EQ(render(ChatFamily::Llama2, {{"system", "S"}}), "[INST] <<SYS>>\nS\n<</SYS>> [/INST]");
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(render(ChatFamily::Llama3, kConv),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Content is trimmed, as the template's `| trim` does.
  EXPECT_EQ(render(ChatFamily::Llama3, {{"user", "  Hi \n"}}, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_EQ(ChatTemplate(ChatFamily::Llama3).stop_strings(),
            std::vector<std::string>{"<|eot_id|>"});
}

TEST(ChatTemplate, MistralFoldsSystemIntoFirstUserMessage) {
  EXPECT_EQ(render(ChatFamily::Mistral, kConv),
            "[INST] Be brief.\n\nHi [/INST]Hello!</s>[INST] Name a color. [/INST]");
  EXPECT_EQ(render(ChatFamily::Mistral, kNoSystem),
            "[INST] Hi [/INST]Hello!</s>[INST] Name a color. [/INST]");
}

TEST(ChatTemplate, GemmaFoldsSystemAndCallsTheAssistantModel) {
  EXPECT_EQ(render(ChatFamily::Gemma, kConv),
            "<start_of_turn>user\nBe "
            "brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\nName a color.<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(ChatTemplate(ChatFamily::Gemma).stop_strings(),
            std::vector<std::string>{"<end_of_turn>"});
}

TEST(ChatTemplate, Phi3) {
  EXPECT_EQ(render(ChatFamily::Phi3, kConv),
            "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
            "<|user|>\nName a color.<|end|>\n<|assistant|>\n");
  EXPECT_EQ(ChatTemplate(ChatFamily::Phi3).stop_strings(), std::vector<std::string>{"<|end|>"});
}

TEST(ChatTemplate, Zephyr) {
  EXPECT_EQ(render(ChatFamily::Zephyr, kConv),
            "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
            "<|user|>\nName a color.</s>\n<|assistant|>\n");
  const auto stops = ChatTemplate(ChatFamily::Zephyr).stop_strings("</s>");
  EXPECT_NE(std::find(stops.begin(), stops.end(), "</s>"), stops.end());
}

TEST(ChatTemplate, PlainFallback) {
  EXPECT_EQ(render(ChatFamily::Plain, kConv),
            "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: Name a color.\nAssistant:");
  EXPECT_EQ(render(ChatFamily::Plain, {{"user", "Hi"}}), "User: Hi\nAssistant:");
  EXPECT_EQ(ChatTemplate().family(), ChatFamily::Plain);
  EXPECT_EQ(ChatTemplate().stop_strings(), std::vector<std::string>{"\nUser:"});
}

TEST(ChatTemplate, DeveloperRoleIsASystemMessage) {
  const std::vector<ChatMessage> m = {{"developer", "Rules."}, {"user", "Hi"}};
  EXPECT_EQ(render(ChatFamily::Gemma, m),
            "<start_of_turn>user\nRules.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render(ChatFamily::Phi3, m),
            "<|system|>\nRules.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
}

}  // namespace
}  // namespace strata
