package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
)

// Body reads one HTTP/1.1 message body from a connection's reader as net/http's body
// does: Content-Length bytes, chunked (the trailer into the header Init names), or until
// the connection ends. The proxy's fast path uses it for both directions: a client's
// request body on the fast server and an instance's answer body. Reset readies it for the
// next message on the same connection; nothing is allocated per message.
type Body struct {
	br      *bufio.Reader
	trailer *http.Header // where a chunked body's trailer goes
	onEOF   func()       // nil, or called each time the body has been read whole

	remain  int64 // bytes left of a Content-Length body; -1: chunked, or until EOF
	chunked io.Reader
	eof     bool
	closed  bool
	err     error
}

// Init sets where b reads from (br), where a chunked body's trailer goes (*trailer), and
// onEOF (nil, or called each time a body has been read whole).
func (b *Body) Init(br *bufio.Reader, trailer *http.Header, onEOF func()) {
	b.br, b.trailer, b.onEOF = br, trailer, onEOF
}

// Reset readies b for a body of n bytes, or chunked, or (n < 0, not chunked) one that runs
// until the connection ends.
func (b *Body) Reset(n int64, chunked bool) {
	b.remain, b.chunked, b.eof, b.closed, b.err = n, nil, n == 0 && !chunked, false, nil
	if chunked {
		b.remain = -1
		b.chunked = httputil.NewChunkedReader(b.br)
	}
}

// Done reports whether the body has been read to its end (a cut one included).
func (b *Body) Done() bool { return b.eof }

// Closed reports whether Close was called.
func (b *Body) Closed() bool { return b.closed }

// Remaining is the number of bytes left of a Content-Length body; -1 for the others.
func (b *Body) Remaining() int64 { return b.remain }

func (b *Body) Read(p []byte) (int, error) {
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
func (b *Body) Close() error {
	b.closed = true
	return nil
}

// readTrailer reads what follows the last chunk into *t, as net/http's body.readTrailer.
func readTrailer(br *bufio.Reader, t *http.Header) error {
	buf, err := br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errors.New("http: unexpected EOF reading trailer")
	}
	if err != nil {
		return err
	}
	if !upcomingDoubleCRLF(br) {
		return errors.New("http: suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errors.New("http: unexpected EOF reading trailer")
		}
		return err
	}
	if *t == nil {
		*t = http.Header{}
	}
	for k, vv := range hdr {
		(*t)[k] = vv
	}
	return nil
}

func upcomingDoubleCRLF(r *bufio.Reader) bool {
	for peekSize := 4; ; peekSize++ {
		buf, err := r.Peek(peekSize)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
}
