"""TLS for mqtt.client, imported by the client only when a connection uses ssl.

Kept out of client.py so that plain-TCP nodes neither load ``ssl`` nor carry this code
(the client .mpy must stay within 5 KB). ``wrap(client, sock)`` reads the client's public
``ssl``, ``ssl_params`` and ``server`` and returns the stream to speak MQTT over:

- ssl=True: a fresh client SSLContext. ssl_params: "cafile" (PEM or DER path; without it the
  server is not verified, as with umqtt, unless "cert_reqs" says otherwise), "cert_reqs",
  "cert"/"key" (DER client certificate, as umqtt's ssl_params passed them),
  "server_hostname" (default: the client's server).
- ssl=an SSLContext: used as it is.

A failed verification (wrong CA or name) or a certificate that does not load raises
ValueError("TLS <mbedTLS text>"), which the client turns into MQTTException: it is a
configuration fault, not a link fault. A missing cafile is an OSError, as from open().

    from mqtt.tls import wrap
    s = wrap(client, tcp_socket)  # the TLS handshake runs under tcp_socket's timeout
"""

import ssl


def _der(pem):
    # PEM to DER: the Unix port's mbedTLS has no PEM parser, and DER loads anywhere.
    from binascii import a2b_base64

    return a2b_base64(b"".join(pem.split(b"-----")[2].split()))


def wrap(client, sock):
    c = client.ssl
    p = client.ssl_params
    try:
        if c is True:
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ca = p.get("cafile")
            if ca:
                with open(ca, "rb") as f:
                    ca = f.read()
                if ca[:5] == b"-----":
                    ca = _der(ca)
                c.load_verify_locations(cadata=ca)
            c.verify_mode = p.get("cert_reqs", ssl.CERT_REQUIRED if ca else ssl.CERT_NONE)
            if "cert" in p:
                c.load_cert_chain(p["cert"], p.get("key"))
        return c.wrap_socket(sock, server_hostname=p.get("server_hostname", client.server))
    except ValueError as e:
        # mbedTLS: verification failed (wrong CA or name) or a certificate would not load.
        # One line, prefixed, for the client to raise as MQTTException.
        raise ValueError("TLS " + str(e).replace("\n", " "))
