"""Hand-written Pratt parser for CQL2 text (OGC 21-065r2), WKT literals included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geoservice.cql2.lexer import Token, syntax_error, tokenize
from geoservice.cql2.nodes import (
    Array,
    BBox,
    Expr,
    Geometry,
    Interval,
    Literal,
    Op,
    Property,
    canonical_op,
)
from geoservice.cql2.values import date_literal, interval_end, timestamp_literal

# binding powers
BP_OR, BP_AND, BP_NOT, BP_CMP, BP_ADD, BP_MUL, BP_POW = 1, 2, 3, 4, 5, 6, 7
CMP_SYMBOLS = {"=", "<>", "<", "<=", ">", ">="}
MUL_OPS = {"*": "*", "/": "/", "%": "%", "DIV": "div"}
RESERVED = {"AND", "OR", "NOT", "LIKE", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE", "DIV"}
WKT_TYPES = {
    "POINT": "Point",
    "LINESTRING": "LineString",
    "POLYGON": "Polygon",
    "MULTIPOINT": "MultiPoint",
    "MULTILINESTRING": "MultiLineString",
    "MULTIPOLYGON": "MultiPolygon",
    "GEOMETRYCOLLECTION": "GeometryCollection",
}
EXPR_START = "a property, literal, function call or '('"


class Parser:
    """Recursive-descent / Pratt parser over a token list."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def error(self, problem: str, accepted: str, tok: Token | None = None) -> Exception:
        tok = tok or self.tok
        found = "end of input" if tok.kind == "EOF" else repr(tok.text)
        return syntax_error(self.text, tok.pos, f"{problem} (found {found})", accepted)

    def expect_sym(self, sym: str) -> Token:
        if self.tok.kind != "SYM" or self.tok.text != sym:
            raise self.error(f"missing {sym!r}", repr(sym))
        return self.advance()

    def accept_kw(self, *words: str) -> bool:
        if self.tok.upper in words:
            self.i += 1
            return True
        return False

    def is_sym(self, sym: str) -> bool:
        return self.tok.kind == "SYM" and self.tok.text == sym

    # -- entry -----------------------------------------------------------
    def parse(self) -> Expr:
        if self.tok.kind == "EOF":
            raise self.error("empty filter", "a boolean expression")
        expr = self.expr(0)
        if self.tok.kind != "EOF":
            raise self.error(
                "unexpected token after a complete expression",
                "AND, OR, a comparison operator or end of input",
            )
        return expr

    # -- Pratt core ----------------------------------------------------
    def expr(self, min_bp: int) -> Expr:
        left = self.prefix()
        compared = False
        while True:
            step = self.infix_step(left, min_bp, compared)
            if step is None:
                return left
            left, compared = step

    def infix_step(self, left: Expr, min_bp: int, compared: bool) -> tuple[Expr, bool] | None:
        tok = self.tok
        if tok.upper == "OR" and min_bp <= BP_OR:
            self.advance()
            return Op("or", (left, self.expr(BP_OR + 1))), False
        if tok.upper == "AND" and min_bp <= BP_AND:
            self.advance()
            return Op("and", (left, self.expr(BP_AND + 1))), False
        if min_bp <= BP_CMP and self.starts_predicate():
            if compared:
                raise self.error("comparisons cannot be chained", "AND/OR between comparisons")
            return self.predicate(left), True
        return self.arith_step(left, min_bp, compared)

    def arith_step(self, left: Expr, min_bp: int, compared: bool) -> tuple[Expr, bool] | None:
        tok = self.tok
        if tok.kind == "SYM" and tok.text in "+-" and min_bp <= BP_ADD:
            self.advance()
            return Op(tok.text, (left, self.expr(BP_ADD + 1))), compared
        mul = MUL_OPS.get(tok.text.upper() if tok.kind in ("SYM", "IDENT") else "")
        if mul and min_bp <= BP_MUL:
            self.advance()
            return Op(mul, (left, self.expr(BP_MUL + 1))), compared
        if tok.kind == "SYM" and tok.text == "^" and min_bp <= BP_POW:
            self.advance()
            return Op("^", (left, self.expr(BP_POW))), compared  # right-associative
        return None

    def starts_predicate(self) -> bool:
        tok = self.tok
        if tok.kind == "SYM":
            return tok.text in CMP_SYMBOLS
        if tok.upper in ("LIKE", "BETWEEN", "IN", "IS"):
            return True
        return tok.upper == "NOT" and self.peek().upper in ("LIKE", "BETWEEN", "IN")

    def predicate(self, left: Expr) -> Expr:
        tok = self.advance()
        if tok.kind == "SYM":
            return Op(tok.text, (left, self.expr(BP_ADD)))
        if tok.upper == "IS":
            negate = self.accept_kw("NOT")
            if not self.accept_kw("NULL"):
                raise self.error("IS must be followed by [NOT] NULL", "NULL or NOT NULL")
            node: Expr = Op("isNull", (left,))
            return Op("not", (node,)) if negate else node
        negate = tok.upper == "NOT"
        word = self.advance().upper if negate else tok.upper
        node = self.advanced_comparison(word, left)
        return Op("not", (node,)) if negate else node

    def advanced_comparison(self, word: str, left: Expr) -> Expr:
        if word == "LIKE":
            return Op("like", (left, self.expr(BP_ADD)))
        if word == "BETWEEN":
            low = self.expr(BP_ADD)
            if not self.accept_kw("AND"):
                raise self.error("BETWEEN needs 'AND'", "BETWEEN <low> AND <high>")
            return Op("between", (left, low, self.expr(BP_ADD)))
        self.expect_sym("(")
        items = self.comma_list(lambda: self.expr(BP_ADD))
        return Op("in", (left, Array(tuple(items))))

    def comma_list(self, item: Callable[[], Any]) -> list[Any]:
        """Parse ``item {, item} )`` (the '(' already consumed)."""
        items = [item()]
        while self.is_sym(","):
            self.advance()
            items.append(item())
        self.expect_sym(")")
        return items

    # -- prefix / primaries --------------------------------------------
    def prefix(self) -> Expr:
        tok = self.tok
        if tok.upper == "NOT":
            self.advance()
            return Op("not", (self.expr(BP_NOT),))
        if tok.kind == "SYM" and tok.text in "+-":
            return self.unary_sign()
        if tok.kind == "SYM" and tok.text == "(":
            return self.parenthesised()
        if tok.kind == "NUMBER":
            self.advance()
            assert isinstance(tok.value, int | float)
            return Literal(tok.value)
        if tok.kind == "STRING":
            self.advance()
            return Literal(str(tok.value))
        if tok.kind == "QIDENT":
            self.advance()
            return Property(str(tok.value))
        if tok.kind == "IDENT":
            return self.identifier()
        raise self.error("expected an expression", EXPR_START)

    def unary_sign(self) -> Expr:
        sign = self.advance().text
        operand = self.expr(BP_POW)  # -2^2 is -(2^2)
        if sign == "+":
            return operand
        if isinstance(operand, Literal) and isinstance(operand.value, int | float):
            if not isinstance(operand.value, bool):
                return Literal(-operand.value)
        return Op("*", (Literal(-1), operand))

    def parenthesised(self) -> Expr:
        self.advance()
        if self.is_sym(")"):
            self.advance()
            return Array(())
        items = self.comma_list(lambda: self.expr(0))
        return items[0] if len(items) == 1 else Array(tuple(items))

    def identifier(self) -> Expr:
        tok = self.tok
        word = tok.upper
        if word in ("TRUE", "FALSE"):
            self.advance()
            return Literal(word == "TRUE")
        if word in WKT_TYPES:
            return Geometry.from_geojson(self.wkt())
        if word in RESERVED:
            raise self.error(f"reserved word {tok.text!r} cannot start an expression", EXPR_START)
        if not (self.peek().kind == "SYM" and self.peek().text == "("):
            self.advance()
            return Property(tok.text)
        return self.call()

    def call(self) -> Expr:
        name = self.advance()
        self.advance()  # '('
        word = name.upper
        if word in ("DATE", "TIMESTAMP"):
            return self.instant(name, word)
        if word == "INTERVAL":
            ends = self.comma_list(lambda: self.interval_end())
            if len(ends) != 2:
                raise self.error("INTERVAL takes two arguments", "INTERVAL(start, end)", name)
            return Interval(ends[0], ends[1])
        if word == "BBOX":
            coords = self.comma_list(self.signed_number)
            if len(coords) not in (4, 6):
                raise self.error("BBOX takes 4 or 6 numbers", "BBOX(minx,miny,maxx,maxy)", name)
            return BBox(tuple(float(c) for c in coords))
        if self.is_sym(")"):
            self.advance()
            return Op(canonical_op(name.text), ())
        return Op(canonical_op(name.text), tuple(self.comma_list(lambda: self.expr(0))))

    def instant(self, name: Token, word: str) -> Expr:
        tok = self.tok
        if tok.kind != "STRING":
            raise self.error(f"{word} needs a quoted string", f"{word}('...')")
        self.advance()
        self.expect_sym(")")
        try:
            return date_literal(str(tok.value)) if word == "DATE" else timestamp_literal(
                str(tok.value)
            )
        except ValueError as exc:
            raise syntax_error(self.text, tok.pos, str(exc), _instant_help(word)) from None

    def interval_end(self) -> Expr:
        tok = self.tok
        if tok.kind == "STRING":
            self.advance()
            try:
                return interval_end(str(tok.value))
            except ValueError as exc:
                raise syntax_error(
                    self.text, tok.pos, str(exc), "'..', a date or an RFC 3339 timestamp"
                ) from None
        return self.expr(BP_ADD)

    # -- WKT ------------------------------------------------------------
    def signed_number(self) -> float:
        sign = 1.0
        if self.tok.kind == "SYM" and self.tok.text in "+-":
            sign = -1.0 if self.advance().text == "-" else 1.0
        if self.tok.kind != "NUMBER":
            raise self.error("expected a number", "a number")
        value = self.advance().value
        assert isinstance(value, int | float)
        return sign * float(value)

    def wkt(self) -> dict[str, Any]:
        gtype = WKT_TYPES[self.advance().upper]
        self.accept_kw("Z")
        self.expect_sym("(")
        if gtype == "GeometryCollection":
            return {"type": gtype, "geometries": self.comma_list(self.wkt_member)}
        return {"type": gtype, "coordinates": self.wkt_body(gtype)}

    def wkt_member(self) -> dict[str, Any]:
        if self.tok.upper not in WKT_TYPES:
            raise self.error("expected a WKT geometry", "POINT, LINESTRING, POLYGON, ...")
        return self.wkt()

    def wkt_body(self, gtype: str) -> Any:
        """Coordinates after the opening '(' of a geometry of type gtype."""
        if gtype == "Point":
            point = self.position()
            self.expect_sym(")")
            return point
        if gtype == "LineString":
            return self.comma_list(self.position)
        if gtype == "MultiPoint":
            return self.comma_list(self.multipoint_member)
        if gtype in ("Polygon", "MultiLineString"):
            return self.comma_list(self.ring)
        return self.comma_list(self.polygon)

    def position(self) -> list[float]:
        coords = [self.signed_number(), self.signed_number()]
        if self.tok.kind in ("NUMBER", "SYM") and self.tok.text not in (",", ")"):
            coords.append(self.signed_number())
        return coords

    def multipoint_member(self) -> list[float]:
        if self.is_sym("("):
            self.advance()
            point = self.position()
            self.expect_sym(")")
            return point
        return self.position()

    def ring(self) -> list[list[float]]:
        self.expect_sym("(")
        return self.comma_list(self.position)

    def polygon(self) -> list[list[list[float]]]:
        self.expect_sym("(")
        return self.comma_list(self.ring)


def _instant_help(word: str) -> str:
    if word == "DATE":
        return "DATE('YYYY-MM-DD')"
    return "TIMESTAMP('YYYY-MM-DDThh:mm:ss[.fff]Z')"


def parse_text(text: str) -> Expr:
    """Parse a CQL2 text filter into the AST.

    Parameters
    ----------
    text : str
        The filter in CQL2 text encoding (keywords and function names case-insensitive).

    Returns
    -------
    Expr
        The expression tree.

    Raises
    ------
    CQL2Error
        On a syntax error; the message gives the position (1-based) and what was expected.

    Examples
    --------
    >>> parse_text("pop > 10 AND name LIKE 'A%'").op
    'and'
    """
    return Parser(text).parse()
