//! The ChatML prompt format of SmolLM2-Instruct, as its chat template (in the GGUF metadata,
//! `tokenizer.chat_template`) writes it.
//!
//! The template is Jinja; rather than run a template engine, this module writes the same text:
//! every message is `<|im_start|>{role}\n{content}<|im_end|>\n`; when the first message is not
//! a system message, the template puts a system message with [`DEFAULT_SYSTEM_PROMPT`] before
//! it; and the generation prompt `<|im_start|>assistant\n` ends the text, so the model's next
//! tokens are the answer, which it ends with `<|im_end|>` (the end-of-sequence token).

/// The system prompt the template supplies when the conversation has none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// One message of a conversation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Message<'a> {
    /// `system`, `user` or `assistant`.
    pub role: &'a str,
    pub content: &'a str,
}

/// The template applied to `messages`; with `add_generation_prompt` it ends by opening the
/// assistant's turn.
pub fn chatml(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut text = String::new();
    if messages.first().is_some_and(|m| m.role != "system") {
        push_message(&mut text, "system", DEFAULT_SYSTEM_PROMPT);
    }
    for m in messages {
        push_message(&mut text, m.role, m.content);
    }
    if add_generation_prompt {
        text.push_str("<|im_start|>assistant\n");
    }
    text
}

/// The prompt for one user message, with `system` as the system prompt (the template's
/// default when `None`), ready for the assistant's answer.
pub fn chat_prompt(system: Option<&str>, user: &str) -> String {
    let user = Message { role: "user", content: user };
    match system {
        Some(content) => chatml(&[Message { role: "system", content }, user], true),
        None => chatml(&[user], true),
    }
}

fn push_message(text: &mut String, role: &str, content: &str) {
    text.push_str("<|im_start|>");
    text.push_str(role);
    text.push('\n');
    text.push_str(content);
    text.push_str("<|im_end|>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_system_prompt_comes_first() {
        assert_eq!(
            chat_prompt(None, "What is 2+2?"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_given_system_prompt_replaces_the_default() {
        assert_eq!(
            chat_prompt(Some("Be brief."), "Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn a_conversation_without_generation_prompt() {
        let m = [Message { role: "user", content: "a" }, Message { role: "assistant", content: "b" }];
        let text = chatml(&m, false);
        assert!(text.ends_with("<|im_start|>assistant\nb<|im_end|>\n"), "{text}");
        assert_eq!(text.matches("<|im_start|>").count(), 3);
        assert_eq!(chatml(&[], true), "<|im_start|>assistant\n");
    }
}
