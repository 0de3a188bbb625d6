"""Tokeniser for CQL2 text."""

from __future__ import annotations

from dataclasses import dataclass

from geoservice.cql2.nodes import CQL2Error

SYMBOLS = ("<>", "<=", ">=", "=", "<", ">", "(", ")", ",", "+", "-", "*", "/", "%", "^")


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is NUMBER, STRING, IDENT, QIDENT, SYM or EOF."""

    kind: str
    text: str
    pos: int
    value: str | int | float | None = None

    @property
    def upper(self) -> str:
        """The token text in upper case (for keyword matching)."""
        return self.text.upper() if self.kind == "IDENT" else ""


def syntax_error(text: str, pos: int, problem: str, accepted: str) -> CQL2Error:
    """Build a CQL2Error that says what is wrong, where, and what is accepted."""
    snippet = text[max(0, pos - 15) : pos + 15]
    return CQL2Error(
        f"invalid CQL2 text filter: {problem} at position {pos + 1} (near {snippet!r}); "
        f"expected {accepted}"
    )


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch in "_:"


def _is_ident_part(ch: str) -> bool:
    return ch.isalnum() or ch in "_:." or ch == "\u00b7"


def _read_string(text: str, pos: int) -> tuple[str, int]:
    """Read a '...' literal starting at pos; '' and \\' escape a quote."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "'" and text[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        elif ch == "\\" and text[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        elif ch == "'":
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise syntax_error(text, pos, "unterminated string literal", "a closing single quote")


def _read_quoted_ident(text: str, pos: int) -> tuple[str, int]:
    """Read a "..." identifier starting at pos; "" escapes a double quote."""
    end = pos + 1
    out: list[str] = []
    while end < len(text):
        if text[end] == '"' and text[end + 1 : end + 2] == '"':
            out.append('"')
            end += 2
        elif text[end] == '"':
            return "".join(out), end + 1
        else:
            out.append(text[end])
            end += 1
    raise syntax_error(text, pos, "unterminated quoted identifier", 'a closing double quote')


def _read_number(text: str, pos: int) -> tuple[int | float, int]:
    i = pos
    while i < len(text) and text[i].isdigit():
        i += 1
    is_float = False
    if i < len(text) and text[i] == "." and text[i + 1 : i + 2].isdigit():
        is_float = True
        i += 1
        while i < len(text) and text[i].isdigit():
            i += 1
    if i < len(text) and text[i] in "eE":
        j = i + 1
        if j < len(text) and text[j] in "+-":
            j += 1
        if j < len(text) and text[j].isdigit():
            is_float = True
            i = j
            while i < len(text) and text[i].isdigit():
                i += 1
    raw = text[pos:i]
    return (float(raw) if is_float else int(raw)), i


def tokenize(text: str) -> list[Token]:
    """Split CQL2 text into tokens (positions are 0-based character offsets).

    Examples
    --------
    >>> [t.text for t in tokenize("a >= 'x'")]
    ['a', '>=', "'x'", '']
    """
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            value, end = _read_string(text, i)
            tokens.append(Token("STRING", text[i:end], i, value))
            i = end
        elif ch == '"':
            name, end = _read_quoted_ident(text, i)
            tokens.append(Token("QIDENT", text[i:end], i, name))
            i = end
        elif ch.isdigit() or (ch == "." and text[i + 1 : i + 2].isdigit()):
            num, end = _read_number(text, i)
            tokens.append(Token("NUMBER", text[i:end], i, num))
            i = end
        elif _is_ident_start(ch):
            end = i + 1
            while end < len(text) and _is_ident_part(text[end]):
                end += 1
            tokens.append(Token("IDENT", text[i:end], i, text[i:end]))
            i = end
        else:
            sym = next((s for s in SYMBOLS if text.startswith(s, i)), None)
            if sym is None:
                raise syntax_error(text, i, f"unexpected character {ch!r}", "a CQL2 token")
            tokens.append(Token("SYM", sym, i))
            i += len(sym)
    tokens.append(Token("EOF", "", len(text)))
    return tokens
