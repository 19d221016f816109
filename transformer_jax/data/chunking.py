"""Split long text into bounded pieces, at line boundaries when possible.

One pathological input (a 20 MB minified file, a JSON dump with no newline) must not make any
stage hold a whole-document structure in memory: SentencePiece's lattice for a 20 MB string
costs over 1 GB, and training drops sentences longer than `max_sentence_length`. Sources,
tokenizer training and encoding all bound their inputs with this one function.
"""

MAX_DOC_CHARS = 1_000_000


def split_text(text: str, max_chars: int = MAX_DOC_CHARS) -> list[str]:
    """Splits `text` into consecutive pieces of at most `max_chars` characters.

    Each cut is made just after the last newline inside the window, so pieces are whole lines
    whenever a line fits; a line longer than `max_chars` is cut hard. `"".join(pieces) == text`.

    Args:
      text: any string.
      max_chars: the largest piece length, >= 1.

    Returns:
      The pieces in order; `[text]` when it is short enough (also for the empty string).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    if len(text) <= max_chars:
        return [text]
    pieces = []
    start = 0
    while len(text) - start > max_chars:
        newline = text.rfind("\n", start, start + max_chars)
        end = newline + 1 if newline >= 0 else start + max_chars
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces
