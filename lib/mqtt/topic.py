"""MQTT topic names and filters, checked as a broker checks them: imported by mqtt.client (its
check_topic, which the robust wrapper uses too) only for a topic it has not checked lately.

A broker drops the connection of a client that sends a topic it does not accept, so a bad topic
must be refused before it is written, with a message naming it. Rules (MQTT 3.1.1 1.5.3, 4.7;
what mosquitto 2 enforces is stricter than the spec's "should not", and followed here): 1 to
65535 bytes of UTF-8 without overlong forms, surrogates (U+D800-U+DFFF) or code points over
U+10FFFF; no U+0000 (MQTT-1.5.3-2), no control characters (U+0001-U+001F, U+007F-U+009F)
and no non-characters (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF). A topic name has no ``+`` or ``#``
(MQTT-3.3.2-2); in a filter ``#`` is a whole level and the last one (MQTT-4.7.1-2), ``+`` a
whole level (MQTT-4.7.1-3)::

    from mqtt.topic import check, bad
    check("a/b")                # None; ValueError("topic 'a/+': ...") for a bad one
    check(b"a/+/c", True)       # a filter
    bad(b"a\\x00b")              # "not UTF-8 a broker accepts (byte 1)"; None when fine
"""


def bad(t, filt=False):
    """Why the topic (bytes) is not acceptable, or None."""
    n = len(t)
    if not 0 < n <= 65535:
        return "expected 1..65535 bytes, got %d" % n
    # Each character, by the rules above; the loop stops at the first one a broker refuses.
    i = 0
    while i < n:
        c = t[i]
        if c < 0x80:
            if c < 0x20 or c == 0x7F:  # NUL and the C0 controls, DEL
                break
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k = 1
            cp = c & 0x1F
        elif 0xE0 <= c <= 0xEF:
            k = 2
            cp = c & 0x0F
        elif 0xF0 <= c <= 0xF4:
            k = 3
            cp = c & 0x07
        else:
            break  # a continuation byte, C0/C1 (overlong) or F5-FF
        if i + k >= n:
            break
        j = i + 1
        while j <= i + k and t[j] & 0xC0 == 0x80:
            cp = cp << 6 | t[j] & 0x3F
            j += 1
        if (
            j <= i + k  # not a continuation byte
            or cp < (0x80, 0x800, 0x10000)[k - 1]  # overlong
            or cp <= 0x9F  # C1 controls
            or 0xD800 <= cp <= 0xDFFF
            or 0xFDD0 <= cp <= 0xFDEF
            or cp & 0xFFFE == 0xFFFE
            or cp > 0x10FFFF
        ):
            break
        i = j
    if i < n:
        return "not UTF-8 a broker accepts (byte %d)" % i
    if not filt:
        if b"+" in t or b"#" in t:
            return "wildcards + and # only in subscriptions"
        return None
    i = 0  # each level, without copying it: a wildcard fills it; "#" only the last
    while True:
        j = t.find(b"/", i)
        e = n if j < 0 else j
        if (t.find(b"#", i, e) >= 0 and (e - i != 1 or j >= 0)) or (
            t.find(b"+", i, e) >= 0 and e - i != 1
        ):
            return "+ and # must fill a level, # only the last"
        if j < 0:
            return None
        i = j + 1


def check(t, filt=False):
    """ValueError naming the topic (str, bytes or bytearray) and saying why, unless it is
    acceptable."""
    why = bad(t.encode() if isinstance(t, str) else t, filt)
    if why:
        s = "%r" % (t[:60],) + ("..." if len(t) > 60 else "")
        raise ValueError("%s %s: %s" % ("topic filter" if filt else "topic", s, why))
