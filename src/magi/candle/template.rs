//! Chat templates: how a conversation becomes the exact text a model was trained on.
//!
//! GGUF files carry a Jinja template, but rendering Jinja faithfully is a project of its own
//! and its output can vary with the renderer. The families we support have fixed, well-known
//! formats, so we detect the family from the embedded template and render it in code: the same
//! messages always give the same bytes, which re-execution depends on.

use crate::magi::model::{ChatMessage, Role};
use serde::{Deserialize, Serialize};

/// A chat format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>` (SmolLM2, Qwen2).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3).
    Llama3,
    /// `[INST] … [/INST]` (Llama 2, Mistral); the system text joins the first user turn.
    Inst,
    /// `<start_of_turn>user\n…<end_of_turn>` (Gemma); Gemma has no system role, so the
    /// system text opens the first user turn, as Gemma's own template does.
    Gemma,
    /// Plain `System:` / `User:` / `Assistant:` lines, for base models without a template.
    Plain,
}

impl ChatTemplate {
    /// Picks the family from the GGUF's `tokenizer.chat_template`.
    pub fn detect(jinja: Option<&str>) -> Self {
        match jinja {
            Some(t) if t.contains("<|im_start|>") => ChatTemplate::ChatMl,
            Some(t) if t.contains("<|start_header_id|>") => ChatTemplate::Llama3,
            Some(t) if t.contains("[INST]") => ChatTemplate::Inst,
            Some(t) if t.contains("<start_of_turn>") => ChatTemplate::Gemma,
            _ => ChatTemplate::Plain,
        }
    }

    /// Token texts that end an assistant turn.
    pub fn stop_pieces(self) -> &'static [&'static str] {
        match self {
            ChatTemplate::ChatMl => &["<|im_end|>", "<|endoftext|>"],
            ChatTemplate::Llama3 => &["<|eot_id|>", "<|end_of_text|>"],
            ChatTemplate::Inst => &["</s>"],
            ChatTemplate::Gemma => &["<end_of_turn>", "<eos>"],
            ChatTemplate::Plain => &["</s>", "<|endoftext|>"],
        }
    }

    /// Renders `messages`, ending with the opening of an assistant turn.
    pub fn render(self, messages: &[ChatMessage]) -> String {
        let mut out = String::new();
        match self {
            ChatTemplate::ChatMl => {
                for m in messages {
                    out.push_str(&format!(
                        "<|im_start|>{}\n{}<|im_end|>\n",
                        role(m.role),
                        m.content
                    ));
                }
                out.push_str("<|im_start|>assistant\n");
            }
            ChatTemplate::Llama3 => {
                for m in messages {
                    out.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        role(m.role),
                        m.content.trim()
                    ));
                }
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
            ChatTemplate::Inst => {
                let mut system = String::new();
                for m in messages {
                    match m.role {
                        Role::System => system = format!("{}\n\n", m.content.trim()),
                        Role::User => {
                            out.push_str(&format!("[INST] {}{} [/INST]", system, m.content.trim()));
                            system.clear();
                        }
                        Role::Assistant => out.push_str(&format!(" {}</s>", m.content.trim())),
                    }
                }
            }
            ChatTemplate::Gemma => {
                let mut system = String::new();
                for m in messages {
                    let (who, text) = match m.role {
                        Role::System => {
                            system = format!("{}\n\n", m.content.trim());
                            continue;
                        }
                        Role::User => ("user", format!("{system}{}", m.content.trim())),
                        Role::Assistant => ("model", m.content.trim().to_owned()),
                    };
                    system.clear();
                    out.push_str(&format!("<start_of_turn>{who}\n{text}<end_of_turn>\n"));
                }
                out.push_str("<start_of_turn>model\n");
            }
            ChatTemplate::Plain => {
                for m in messages {
                    let who = match m.role {
                        Role::System => "System",
                        Role::User => "User",
                        Role::Assistant => "Assistant",
                    };
                    out.push_str(&format!("{who}: {}\n\n", m.content.trim()));
                }
                out.push_str("Assistant:");
            }
        }
        out
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_matches_smollm2s_format() {
        let msgs = [ChatMessage::system("S"), ChatMessage::user("U")];
        assert_eq!(
            ChatTemplate::ChatMl.render(&msgs),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn detection() {
        assert_eq!(
            ChatTemplate::detect(Some("{{'<|im_start|>'}}")),
            ChatTemplate::ChatMl
        );
        assert_eq!(ChatTemplate::detect(Some("[INST]")), ChatTemplate::Inst);
        assert_eq!(ChatTemplate::detect(None), ChatTemplate::Plain);
        let inst = ChatTemplate::Inst.render(&[ChatMessage::system("S"), ChatMessage::user("U")]);
        assert_eq!(inst, "[INST] S\n\nU [/INST]");
        assert_eq!(
            ChatTemplate::detect(Some("{{ '<start_of_turn>' + role }}")),
            ChatTemplate::Gemma
        );
        let gemma = ChatTemplate::Gemma.render(&[ChatMessage::system("S"), ChatMessage::user("U")]);
        assert_eq!(
            gemma,
            "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n"
        );
    }
}
