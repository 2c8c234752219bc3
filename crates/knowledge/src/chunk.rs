//! The chunker: a document's text split into chunks of at most [`MAX_CHUNK_CHARS`] characters,
//! cut at paragraph boundaries first, then at sentence ends, then between words (a word longer
//! than the bound is cut where the bound falls), each chunk after the first starting about
//! [`OVERLAP_CHARS`] characters before the previous one ends (at a word start). Every chunk is
//! a contiguous span of the text; together they cover every non-blank character. Deterministic.

/// The most characters a chunk holds.
pub const MAX_CHUNK_CHARS: usize = 1_000;
/// About how many characters a chunk repeats from the end of the previous one.
pub const OVERLAP_CHARS: usize = 100;

/// One chunk: its position in the document and its text, the span `start..end` (byte offsets)
/// of the text it was cut from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub index: u32,
    pub start: usize,
    pub end: usize,
    pub content: String,
}

/// A span of the text (byte offsets), never starting or ending with whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

fn chars(text: &str, span: Span) -> usize {
    text[span.start..span.end].chars().count()
}

/// `span` with its leading and trailing whitespace removed (`None` when blank).
fn trimmed(text: &str, start: usize, end: usize) -> Option<Span> {
    let piece = &text[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    (lead < piece.len()).then(|| Span { start: start + lead, end: end - trail })
}

/// Splits `span` at the positions `cut` (byte offsets, ascending, inside the span), trimmed.
fn split_at(text: &str, span: Span, cuts: &[usize]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut from = span.start;
    for &cut in cuts.iter().chain(std::iter::once(&span.end)) {
        if let Some(s) = trimmed(text, from, cut) {
            out.push(s);
        }
        from = cut;
    }
    out
}

/// Paragraphs: runs of text separated by a line that is blank.
fn paragraphs(text: &str) -> Vec<Span> {
    let mut cuts = Vec::new();
    let mut offset = 0;
    let mut previous_blank = false;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty();
        if blank && !previous_blank {
            cuts.push(offset);
        }
        previous_blank = blank;
        offset += line.len();
    }
    split_at(text, Span { start: 0, end: text.len() }, &cuts.into_iter().filter(|&c| c > 0).collect::<Vec<_>>())
}

/// Sentences of `span`: cut after `.`, `!` or `?` (and any closing quotes or brackets) that
/// whitespace follows.
fn sentences(text: &str, span: Span) -> Vec<Span> {
    let piece = &text[span.start..span.end];
    let mut cuts = Vec::new();
    let iter = piece.char_indices();
    let mut after_end = false;
    for (i, c) in iter {
        if matches!(c, '.' | '!' | '?' | '。') {
            after_end = true;
        } else if after_end && matches!(c, '"' | '\'' | ')' | ']' | '»' | '”') {
            // still the sentence's end
        } else if after_end && c.is_whitespace() {
            cuts.push(span.start + i);
            after_end = false;
        } else {
            after_end = false;
        }
    }
    split_at(text, span, &cuts)
}

/// Words of `span` (cut at whitespace), each cut further into pieces of at most `max` chars.
fn words(text: &str, span: Span, max: usize) -> Vec<Span> {
    let piece = &text[span.start..span.end];
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    let push_word = |start: usize, end: usize, out: &mut Vec<Span>| {
        let mut from = start;
        let mut count = 0;
        for (i, _) in text[start..end].char_indices() {
            if count == max {
                out.push(Span { start: from, end: start + i });
                from = start + i;
                count = 0;
            }
            count += 1;
        }
        out.push(Span { start: from, end });
    };
    for (i, c) in piece.char_indices() {
        match (c.is_whitespace(), word_start) {
            (true, Some(s)) => {
                push_word(span.start + s, span.start + i, &mut out);
                word_start = None;
            }
            (false, None) => word_start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = word_start {
        push_word(span.start + s, span.end, &mut out);
    }
    out
}

/// The pieces chunks are packed from, each at most `max` chars: paragraphs that fit, else
/// their sentences that fit, else those sentences' words.
fn pieces(text: &str, max: usize) -> Vec<Span> {
    let mut out = Vec::new();
    for paragraph in paragraphs(text) {
        if chars(text, paragraph) <= max {
            out.push(paragraph);
            continue;
        }
        for sentence in sentences(text, paragraph) {
            if chars(text, sentence) <= max {
                out.push(sentence);
            } else {
                out.extend(words(text, sentence, max));
            }
        }
    }
    out
}

/// Where a chunk following one that ends at `previous_end` starts so that it repeats about
/// `overlap` characters: the first word start at or after `overlap` characters before the end,
/// and after `floor` (the previous chunk's start, so that chunks move forward).
fn overlap_start(text: &str, floor: usize, previous_end: usize, overlap: usize) -> Option<usize> {
    let head = &text[floor..previous_end];
    let total = head.chars().count();
    if total <= overlap {
        return None;
    }
    let skip = total - overlap;
    let mut previous_was_space = false;
    for (n, (i, c)) in head.char_indices().enumerate() {
        if n >= skip && previous_was_space && !c.is_whitespace() {
            return Some(floor + i);
        }
        previous_was_space = c.is_whitespace();
    }
    None
}

/// Splits `text` into chunks of at most [`MAX_CHUNK_CHARS`] characters with about
/// [`OVERLAP_CHARS`] of overlap (see the module documentation).
pub fn chunk(text: &str) -> Vec<Chunk> {
    chunk_with(text, MAX_CHUNK_CHARS, OVERLAP_CHARS)
}

/// [`chunk`] with another bound and overlap (`overlap < max`, `max >= 1`).
pub fn chunk_with(text: &str, max: usize, overlap: usize) -> Vec<Chunk> {
    let max = max.max(1);
    let overlap = overlap.min(max - 1);
    let pieces = pieces(text, max);
    let mut spans: Vec<Span> = Vec::new();
    let mut next = 0;
    while next < pieces.len() {
        // Start with an overlap from the previous chunk when the next piece still fits with it.
        let mut start = pieces[next].start;
        if let Some(previous) = spans.last() {
            if let Some(s) = overlap_start(text, previous.start, previous.end, overlap) {
                if s < start && chars(text, Span { start: s, end: pieces[next].end }) <= max {
                    start = s;
                }
            }
        }
        let mut end = pieces[next].end;
        next += 1;
        while next < pieces.len() && chars(text, Span { start, end: pieces[next].end }) <= max {
            end = pieces[next].end;
            next += 1;
        }
        spans.push(Span { start, end });
    }
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| Chunk { index: i as u32, start: s.start, end: s.end, content: text[s.start..s.end].to_owned() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_short_text_is_one_chunk() {
        let chunks = chunk("  Opening hours: 9 to 5.\n\nClosed on Sundays.  ");
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].content, "Opening hours: 9 to 5.\n\nClosed on Sundays.");
        assert!(chunk("   \n\n  ").is_empty());
    }

    #[test]
    fn paragraphs_are_kept_whole_when_they_fit_and_chunks_overlap() {
        let para = |n: usize| format!("Paragraph {n} says {}.", "word ".repeat(60).trim_end());
        let text = (0..6).map(para).collect::<Vec<_>>().join("\n\n");
        let chunks = chunk_with(&text, 700, 100);
        assert!(chunks.len() >= 2);
        for pair in chunks.windows(2) {
            assert!(pair[1].start < pair[0].end, "consecutive chunks overlap");
            assert!(pair[0].end - pair[1].start <= 110);
        }
        assert!(chunks[0].content.starts_with("Paragraph 0"));
    }

    #[test]
    fn a_long_paragraph_is_cut_at_sentence_ends() {
        let text = (0..40).map(|n| format!("Sentence number {n} is here.")).collect::<Vec<_>>().join(" ");
        let chunks = chunk_with(&text, 200, 30);
        for c in &chunks {
            assert!(c.content.ends_with('.'), "{:?}", c.content);
        }
    }

    /// Every non-blank character of `text` lies inside some chunk's span (the reference: a
    /// mask over the text's bytes).
    fn covered(text: &str, chunks: &[Chunk]) -> bool {
        let mut mask = vec![false; text.len()];
        for c in chunks {
            for m in &mut mask[c.start..c.end] {
                *m = true;
            }
        }
        text.char_indices().all(|(i, ch)| ch.is_whitespace() || mask[i])
    }

    fn texts() -> impl Strategy<Value = String> {
        let word = prop_oneof![
            "[a-zé]{1,12}",
            "[a-z]{1,12}[.!?]",
            Just("\n\n".to_owned()),
            Just("\n".to_owned()),
            "[A-Za-z0-9]{30,80}",
            Just("  ".to_owned()),
        ];
        proptest::collection::vec(word, 0..400).prop_map(|w| w.join(" "))
    }

    proptest! {
        /// The chunker covers its input, respects the bound, and keeps each chunk a trimmed
        /// contiguous span of the text.
        #[test]
        fn chunks_cover_the_text_within_the_bound(text in texts(), max in 20usize..300, overlap in 0usize..40) {
            let chunks = chunk_with(&text, max, overlap);
            prop_assert!(covered(&text, &chunks));
            for (i, c) in chunks.iter().enumerate() {
                prop_assert!(c.content.chars().count() <= max, "chunk {} has {} chars", i, c.content.chars().count());
                prop_assert_eq!(&text[c.start..c.end], c.content.as_str());
                prop_assert_eq!(c.content.trim(), c.content.as_str());
                prop_assert!(!c.content.is_empty());
                prop_assert_eq!(c.index as usize, i);
            }
            for pair in chunks.windows(2) {
                prop_assert!(pair[1].start > pair[0].start && pair[1].end > pair[0].end, "chunks move forward");
            }
        }

        /// The chunker is deterministic: the same text gives the same chunks.
        #[test]
        fn chunking_is_deterministic(text in texts()) {
            prop_assert_eq!(chunk(&text), chunk(&text));
        }

        /// The default bound holds for long texts too.
        #[test]
        fn the_default_bound_holds(text in texts()) {
            let text = text.repeat(4);
            let chunks = chunk(&text);
            prop_assert!(covered(&text, &chunks));
            prop_assert!(chunks.iter().all(|c| c.content.chars().count() <= MAX_CHUNK_CHARS));
        }
    }
}
