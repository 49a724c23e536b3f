//! A test double: an authorizer that answers from a script, so the resolver can be
//! table-tested in-process (access levels × chain results × `on_error` × readings ×
//! missing facts) without keys, tokens or backends.
//!
//! Takes: a list of answers (decisions and errors), given in order and the last one
//! repeated. Reads the credential from `Authorization: Bearer`. Returns: the next answer,
//! and counts how often it was asked. Must never: be built outside tests.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::credential::TokenSource;
use crate::decision::{AuthError, Decision};

/// Answers from a script.
#[derive(Debug)]
pub struct ScriptedAuthorizer {
    sources: Vec<TokenSource>,
    answers: Mutex<VecDeque<Result<Decision, AuthError>>>,
    asked: AtomicUsize,
}

impl ScriptedAuthorizer {
    /// An authorizer that gives `answers` in order, then the last one again.
    pub fn new(answers: Vec<Result<Decision, AuthError>>) -> ScriptedAuthorizer {
        ScriptedAuthorizer {
            sources: vec![TokenSource::Bearer],
            answers: Mutex::new(answers.into()),
            asked: AtomicUsize::new(0),
        }
    }

    pub fn token_sources(&self) -> &[TokenSource] {
        &self.sources
    }

    /// How often it was asked (a cached answer does not ask).
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }

    pub fn decide(&self) -> Result<Decision, AuthError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mut answers = self
            .answers
            .lock()
            .map_err(|_| AuthError::Internal("script poisoned".into()))?;
        let next = if answers.len() > 1 {
            answers.pop_front()
        } else {
            answers.front().cloned()
        };
        next.unwrap_or_else(|| Err(AuthError::Internal("the script is empty".into())))
    }
}
