package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httputil"
)

// bodyReader reads one HTTP/1.1 message body from a connection's reader as net/http's body
// does: Content-Length bytes, chunked (the trailer into *trailer), or until the connection
// ends. The fast path uses it for both directions: a client's request body on the fast
// server (sconn.body) and an instance's answer body (respSpace.body). Reset readies it for
// the next message on the same connection; nothing is allocated per message.
type bodyReader struct {
	br      *bufio.Reader
	trailer *http.Header // where a chunked body's trailer goes
	onEOF   func()       // nil, or called each time the body has been read whole

	remain  int64 // bytes left of a Content-Length body; -1: chunked, or until EOF
	chunked io.Reader
	eof     bool
	closed  bool
	err     error
}

// reset readies b for a body of n bytes, or chunked, or (n < 0, not chunked) one that runs
// until the connection ends.
func (b *bodyReader) reset(n int64, chunked bool) {
	b.remain, b.chunked, b.eof, b.closed, b.err = n, nil, n == 0 && !chunked, false, nil
	if chunked {
		b.remain = -1
		b.chunked = httputil.NewChunkedReader(b.br)
	}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch {
	case b.chunked != nil:
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			if terr := readTrailer(b.br, b.trailer); terr != nil {
				err = terr
			}
		}
	case b.remain >= 0:
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err = b.br.Read(p)
		b.remain -= int64(n)
		if b.remain == 0 {
			err = io.EOF
		} else if err == io.EOF {
			b.eof = true // as net/http's body: later reads return io.EOF
			return n, io.ErrUnexpectedEOF
		}
	default:
		n, err = b.br.Read(p)
	}
	if err == io.EOF {
		b.eof = true
		if b.onEOF != nil {
			b.onEOF()
		}
	} else if err != nil {
		b.err = err
	}
	return n, err
}

// Close makes later reads fail, as net/http's body; what is left unread stays on the
// connection (the fast server decides whether to read it away).
func (b *bodyReader) Close() error {
	b.closed = true
	return nil
}
