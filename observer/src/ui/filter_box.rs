//! The page's filter box: `flowscope observe`'s filter flags typed as one line
//! (`--http-status 5+ --not --comm curl`), turned into the whitelist and blacklist of a
//! GetFlows request by the same code as the CLI's flags, so the agent filters server-side.

use crate::{
    api::{filter, proto::flow::FlowFilter},
    cli::filters::{build_filters, ordered_filter_args, FLAGS},
};

/// Why a filter line was refused; the message is shown under the box as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterBoxError {
    /// An unterminated quote.
    #[error("unterminated {0} quote in the filter")]
    Quote(char),
    /// A word that is no filter flag of `flowscope observe`.
    #[error("{0:?} is not a filter flag of `flowscope observe` (e.g. --http-status 5+, --comm curl, --to-port 80)")]
    UnknownFlag(String),
    /// A value with no flag before it.
    #[error("{0:?} has no filter flag before it")]
    StrayValue(String),
    /// A flag's value or combination the CLI refuses too.
    #[error("{0}")]
    Invalid(String),
}

/// `(whitelist, blacklist)` for a filter line; an empty line filters nothing.
pub fn parse(line: &str) -> Result<(Vec<FlowFilter>, Vec<FlowFilter>), FilterBoxError> {
    let words = split_words(line)?;
    check_words(&words)?;
    let args =
        ordered_filter_args(&words).map_err(|e| FilterBoxError::Invalid(format!("{e:#}")))?;
    let (white, black) =
        build_filters(&args).map_err(|e| FilterBoxError::Invalid(format!("{e:#}")))?;
    // What the agent would refuse as InvalidArgument is refused here, with the same words.
    filter::compile(&white, &black).map_err(|e| FilterBoxError::Invalid(e.to_string()))?;
    Ok((white, black))
}

/// Splits like a shell would for this purpose: blanks separate words, '…' and "…" quote.
fn split_words(line: &str) -> Result<Vec<String>, FilterBoxError> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        return Err(FilterBoxError::Quote(q));
    }
    words.extend(cur);
    Ok(words)
}

/// The CLI skips words that are not filter flags (they are its other options); in the box
/// every word must be a filter flag, `--not`, or the value of the flag before it.
fn check_words(words: &[String]) -> Result<(), FilterBoxError> {
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--not" {
            continue;
        }
        let name = w
            .strip_prefix("--")
            .map(|l| l.split('=').next().unwrap_or(l));
        let flag = FLAGS.iter().find(|(long, short, _)| {
            name.is_some_and(|n| n == *long) || short.is_some_and(|s| s == w)
        });
        match flag {
            Some((_, _, true)) if !w.contains('=') => i += 1,
            Some(_) => {}
            None if w.starts_with('-') => return Err(FilterBoxError::UnknownFlag(w.clone())),
            None => return Err(FilterBoxError::StrayValue(w.clone())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_builds_the_same_filters_as_the_cli_flags() {
        let (white, black) = parse("--http-status 5+ --not --comm 'curl' --to-port=80").unwrap();
        let words: Vec<String> = [
            "--http-status",
            "5+",
            "--not",
            "--comm",
            "curl",
            "--to-port=80",
        ]
        .map(String::from)
        .to_vec();
        let cli = build_filters(&ordered_filter_args(&words).unwrap()).unwrap();
        assert_eq!((white, black), cli);
    }

    #[test]
    fn empty_filters_nothing() {
        assert_eq!(parse("  ").unwrap(), (vec![], vec![]));
    }

    #[test]
    fn mistakes_are_refused_with_what_was_wrong() {
        assert_eq!(
            parse("--bogus 1"),
            Err(FilterBoxError::UnknownFlag("--bogus".into()))
        );
        assert_eq!(
            parse("curl"),
            Err(FilterBoxError::StrayValue("curl".into()))
        );
        assert_eq!(parse("--comm 'curl"), Err(FilterBoxError::Quote('\'')));
        assert!(matches!(
            parse("--http-status abc"),
            Err(FilterBoxError::Invalid(_))
        ));
        assert!(matches!(parse("--not"), Err(FilterBoxError::Invalid(_))));
        // -4 takes no value: the word after it is a flag again.
        assert!(parse("-4 --port 80").is_ok());
    }
}
