"""Strict JSON syntax check with line and column, for the files a user writes by hand.

MicroPython's `json` accepts what JSON forbids (a trailing comma, a missing comma or colon,
leading zeros), so a config with a typo runs on the device and fails `config-check` on the
host, or the other way round. `check()` walks the text once by RFC 8259's grammar and names
the first place it breaks; the value itself is still built by `json.loads`.

    err = check('{"a": 1,}')     # 'line 1 column 9: a comma before "}" (remove it)'

node.cfgfile reads every config file through it; it is loaded for that and dropped again.
"""

# Objects and arrays nested deeper are refused: a config needs 4, and MicroPython's json parser
# would run out of stack long before a hostile file ends.
_MAX_DEPTH = 16


class _Bad(Exception):
    pass


def _where(b, i, what):
    line = b.count(b"\n", 0, i) + 1
    start = b.rfind(b"\n", 0, i) + 1
    # columns in characters, not bytes (a "ü" earlier on the line counts once)
    col = len(b[start:i].decode("utf-8", "ignore")) + 1 if i > start else 1
    return "line %d column %d: %s" % (line, col, what)


class _Walk:
    def __init__(self, b):
        self.b = b  # bytes: indexing a str is slow on MicroPython when it holds non-ASCII
        self.n = len(b)

    def bad(self, i, what):
        raise _Bad(_where(self.b, i, what))

    def ws(self, i):
        b, n = self.b, self.n
        while i < n and b[i] in b" \t\n\r":
            i += 1
        return i

    def peek(self, i, what):
        if i >= self.n:
            self.bad(i, "the text ends where %s was expected" % what)
        return self.b[i]

    def value(self, i, depth):
        c = self.peek(i, "a value")
        if c == 0x7B:  # {
            return self.container(i, depth, 0x7D, True)
        if c == 0x5B:  # [
            return self.container(i, depth, 0x5D, False)
        if c == 0x22:  # "
            return self.string(i)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self.number(i)
        for word in (b"true", b"false", b"null"):
            if self.b[i : i + len(word)] == word:
                return i + len(word)
        if c == 0x27:
            self.bad(i, "strings and keys take double quotes, not '")
        self.bad(i, 'expected a value (a number, "text", true, false, null, {...} or [...])')
        return i  # not reached

    def container(self, i, depth, close, is_obj):
        if depth >= _MAX_DEPTH:
            self.bad(i, "nested more than %d deep" % _MAX_DEPTH)
        end = '"}"' if is_obj else '"]"'
        i = self.ws(i + 1)
        if self.peek(i, end) == close:
            return i + 1
        while True:
            if is_obj:
                if self.peek(i, "a key") != 0x22:
                    self.bad(i, 'expected a key in double quotes like "name"')
                i = self.ws(self.string(i))
                if self.peek(i, '":"') != 0x3A:
                    self.bad(i, 'expected ":" after the key (a missing colon?)')
                i = self.ws(i + 1)
            i = self.ws(self.value(i, depth + 1))
            c = self.peek(i, '"," or ' + end)
            if c == close:
                return i + 1
            if c != 0x2C:
                self.bad(i, 'expected "," or %s (a missing comma?)' % end)
            comma = i
            i = self.ws(i + 1)
            if self.peek(i, "a key" if is_obj else "a value") == close:
                self.bad(comma, "a comma before %s (remove it)" % end)

    def string(self, i):
        b, n = self.b, self.n
        i += 1
        while i < n:
            c = b[i]
            if c == 0x22:
                return i + 1
            if c == 0x5C:  # backslash
                e = b[i + 1] if i + 1 < n else 0
                if e == 0x75:  # \uXXXX
                    h = b[i + 2 : i + 6]
                    if len(h) < 4 or not all(x in b"0123456789abcdefABCDEF" for x in h):
                        self.bad(i, "\\u needs four hex digits")
                    i += 6
                    continue
                if e not in b'"\\/bfnrt':
                    self.bad(i, "unknown escape in a string (write \\\\ for a backslash)")
                i += 2
                continue
            if c < 0x20:
                self.bad(i, "a line break or tab inside a string (write \\n or \\t)")
            i += 1
        self.bad(i, 'a string is not closed (a missing ")')
        return i  # not reached

    def digits(self, i, what):
        j = i
        while j < self.n and 0x30 <= self.b[j] <= 0x39:
            j += 1
        if j == i:
            self.bad(i, what)
        return j

    def number(self, i):
        b, n = self.b, self.n
        s = i
        if b[i] == 0x2D:
            i += 1
        if i < n and b[i] == 0x30:
            i += 1
            if i < n and 0x30 <= b[i] <= 0x39:
                self.bad(
                    s, "a number with a leading zero (JSON has no octal; write it without the 0)"
                )
        else:
            i = self.digits(i, "expected digits")
        if i < n and b[i] == 0x2E:
            i = self.digits(i + 1, "expected digits after the decimal point")
        if i < n and b[i] in b"eE":
            i += 1
            if i < n and b[i] in b"+-":
                i += 1
            i = self.digits(i, "expected digits in the exponent")
        return i


def check(text):
    """None when `text` (str or bytes) is exactly one strict JSON value; else "line L column C:
    what is wrong", at the first place it breaks."""
    b = text.encode() if isinstance(text, str) else text
    w = _Walk(b)
    try:
        i = w.ws(w.value(w.ws(0), 0))
        if i < w.n:
            w.bad(i, "more text after the end of the JSON value")
    except _Bad as e:
        return e.args[0]
    return None


def bad_utf8_at(b):
    """Offset of the first byte of `b` that is not valid UTF-8 (or a surrogate); -1 if none."""
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
        elif 0xF0 <= c <= 0xF4:
            k = 3
        else:
            return i
        for j in range(1, k + 1):
            if i + j >= n or not 0x80 <= b[i + j] <= 0xBF:
                return i
        if c == 0xE0 and b[i + 1] < 0xA0 or c == 0xED and b[i + 1] > 0x9F:
            return i  # overlong, or a UTF-16 surrogate
        if c == 0xF0 and b[i + 1] < 0x90 or c == 0xF4 and b[i + 1] > 0x8F:
            return i
        i += k + 1
    return -1
