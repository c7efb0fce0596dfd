package fast

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// responseWriter is the fast server's http.ResponseWriter for one request at a time on one client
// connection. It answers as net/http's server does for an HTTP/1.1 request (same status
// line, automatic Date, Content-Type sniffing, Content-Length for a short answer written in
// one go, chunking otherwise, Connection: close when the client asked or the server shuts
// down, the same rules for the request body left unread and for trailers), but writes into
// the connection's reused buffers: no per-request response object, bufio writer or map.
type responseWriter struct {
	sc  *sconn
	req *http.Request

	header      http.Header // the handler's, cleared between requests
	status      int
	wroteHeader bool // a final (non-1xx) status was set
	headWritten bool // the status line and headers went to the connection
	chunking    bool
	handlerDone bool

	contentLength int64 // declared, or -1
	written       int64

	closeAfterReply bool
	bodyLimitHit    bool // the request body went over MaxRequestBodyBytes
	trailers        []string
	keys            []string // scratch for sorting header keys

	w *bufio.Writer // 2 KiB in front of the head and chunking, as net/http's
}

// bufferBeforeChunking is net/http's bufferBeforeChunkingSize: an answer shorter than this,
// written before the handler returns, gets a Content-Length instead of chunking.
const bufferBeforeChunking = 2048

// maxPostHandlerRead is net/http's maxPostHandlerReadBytes: the unread request body the
// server reads away to keep the connection.
const maxPostHandlerRead = 256 << 10

func (w *responseWriter) reset(req *http.Request) {
	if w.header == nil {
		w.header = make(http.Header, 8)
	}
	clear(w.header)
	w.req = req
	w.status, w.wroteHeader, w.headWritten, w.chunking, w.handlerDone = 0, false, false, false, false
	w.contentLength, w.written = -1, 0
	w.closeAfterReply, w.bodyLimitHit = false, false
	w.trailers = w.trailers[:0]
	w.w.Reset(chunkWriter{w})
}

func (w *responseWriter) Header() http.Header { return w.header }

// connOf is the fast server's connection that w answers on, or nil when w is not the fast
// server's.
func connOf(w http.ResponseWriter) *sconn {
	if fw, ok := w.(*responseWriter); ok {
		return fw.sc
	}
	return nil
}

// BodyLimitReached is called by the proxy when the request body went over its limit, as
// net/http's maxBytesReader tells its own response writer: the connection is closed after
// the answer.
func (w *responseWriter) BodyLimitReached() {
	w.closeAfterReply = true
	w.bodyLimitHit = true
	if !w.wroteHeader {
		w.header.Set("Connection", "close")
	}
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		w.sc.fs.logf("http: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		bw := w.sc.bw
		writeStatus(bw, code)
		w.writeHeaderSubset(bw, excludedNoBody)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := headerGet(w.header, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.sc.fs.logf("http: invalid Content-Length of %q", cl)
			delete(w.header, "Content-Length")
		}
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	return w.w.Write(p)
}

func (w *responseWriter) Flush() { w.FlushError() }

func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.w.Flush(); err != nil {
		return err
	}
	if !w.headWritten {
		w.writeHead(nil)
	}
	return w.sc.bw.Flush()
}

// finish ends the answer after the handler returned: the rest of the body, the last chunk
// and trailers, and the connection's buffer.
func (w *responseWriter) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.w.Flush()
	if !w.headWritten {
		w.writeHead(nil)
	}
	bw := w.sc.bw
	if w.chunking {
		bw.WriteString("0\r\n")
		w.writeTrailers(bw)
		bw.WriteString("\r\n")
	}
	bw.Flush()
}

// reuse reports whether the connection can take another request, as net/http's
// shouldReuseConnection.
func (w *responseWriter) reuse() bool {
	if w.closeAfterReply {
		return false
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false
	}
	return w.sc.werr == nil
}

// chunkWriter receives what the 2 KiB buffer lets through: it writes the head first, then
// the data, framed as a chunk when chunking.
type chunkWriter struct{ w *responseWriter }

func (cw chunkWriter) Write(p []byte) (int, error) {
	w := cw.w
	if !w.headWritten {
		w.writeHead(p)
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	bw := w.sc.bw
	if w.chunking {
		writeUint(bw, uint64(len(p)), 16)
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.sc.conn.Close()
	}
	return n, err
}

// writeHead writes the status line and headers, deciding the framing as net/http's
// chunkWriter.writeHeader does for an HTTP/1.1 request. p is the first piece of the body.
func (w *responseWriter) writeHead(p []byte) {
	w.headWritten = true
	header := w.header
	isHEAD := w.req.Method == http.MethodHead
	keepAlives := !w.sc.fs.shuttingDown.Load()

	trailers := w.collectKeys() // written below: the deletions on the way leave keys without values
	for _, v := range header["Trailer"] {
		trailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}
	te := headerGet(header, "Transfer-Encoding")
	hasTE := te != ""

	var ex extraHeader
	if w.handlerDone && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !headerHas(header, "Content-Length") && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		ex.contentLength = strconv.AppendInt(w.sc.clenBuf[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1
	if w.sc.wantsClose {
		w.closeAfterReply = true
	}
	if headerGet(header, "Connection") == "close" || !keepAlives {
		w.closeAfterReply = true
	}
	if w.req.ContentLength != 0 && !w.closeAfterReply {
		discard, tooBig := false, false
		b := &w.sc.body
		switch {
		case b.Done():
		case b.Closed():
			w.closeAfterReply = true
		case b.Remaining() >= maxPostHandlerRead:
			tooBig = true
		default:
			discard = true
		}
		if discard {
			_, err := io.CopyN(io.Discard, b, maxPostHandlerRead+1)
			switch err {
			case nil:
				tooBig = true
			case io.EOF:
			default:
				w.closeAfterReply = true
			}
		}
		if tooBig {
			w.closeAfterReply = true
			w.bodyLimitHit = true
			delete(header, "Connection")
			ex.connection = "close"
		}
	}
	code := w.status
	var exclude []string
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		if headerGet(header, "Content-Encoding") == "" && !haveType && !hasTE && len(p) > 0 {
			ex.contentType = http.DetectContentType(p)
		}
	} else {
		exclude = suppressedHeaders(code)
	}
	if !headerHas(header, "Date") {
		ex.date = appendDate(w.sc.dateBuf[:0])
	}
	if hasCL && hasTE && te != "identity" {
		w.sc.fs.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		delete(header, "Content-Length")
		hasCL = false
	}
	dropTE := false
	switch {
	case isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		dropTE = true
	case hasCL:
		dropTE = true
	case hasTE && te == "identity":
		w.closeAfterReply = true
		dropTE = true
	default:
		w.chunking = true
		ex.transferEncoding = "chunked"
		if hasTE && te == "chunked" {
			dropTE = true
		}
	}
	if dropTE {
		delete(header, "Transfer-Encoding")
	}
	if w.chunking {
		delete(header, "Content-Length")
	}
	if w.closeAfterReply && (!keepAlives || !hasToken(headerGet(header, "Connection"), "close")) && !isProtocolSwitch(code, header) {
		delete(header, "Connection")
		ex.connection = "close"
	}
	bw := w.sc.bw
	writeStatus(bw, code)
	w.writeKeys(bw, exclude)
	ex.write(bw)
	bw.WriteString("\r\n")
}

func (w *responseWriter) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return
	}
	w.trailers = append(w.trailers, k)
}

// writeTrailers writes net/http's finalTrailers: the TrailerPrefix keys, then the
// declared ones.
func (w *responseWriter) writeTrailers(bw *bufio.Writer) {
	var t http.Header
	for k, vv := range w.header {
		if kk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = http.Header{}
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = http.Header{}
		}
		for _, v := range w.header[k] {
			t.Add(k, v)
		}
	}
	if t != nil {
		t.Write(bw)
	}
}

var excludedNoBody = []string{"Content-Length", "Transfer-Encoding"}

var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// writeHeaderSubset writes the headers sorted by key as http.Header.WriteSubset, skipping
// exclude and the TrailerPrefix keys.
func (w *responseWriter) writeHeaderSubset(bw *bufio.Writer, exclude []string) {
	w.collectKeys()
	w.writeKeys(bw, exclude)
}

// collectKeys puts the header's keys but the TrailerPrefix ones in w.keys, and reports
// whether there were any of those.
func (w *responseWriter) collectKeys() (trailerKeys bool) {
	keys := w.keys[:0]
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			trailerKeys = true
			continue
		}
		keys = append(keys, k)
	}
	w.keys = keys
	return trailerKeys
}

// writeKeys writes the headers of w.keys but exclude, sorted by key, and empties w.keys.
func (w *responseWriter) writeKeys(bw *bufio.Writer, exclude []string) {
	keys := w.keys
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(exclude, k) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range w.header[k] {
			if hasCRLF(v) {
				v = headerNewlineToSpace.Replace(v)
			}
			v = textproto.TrimString(v)
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	clear(keys)
	w.keys = keys[:0]
}

// extraHeader is net/http's: the headers the server adds.
type extraHeader struct {
	contentType, connection, transferEncoding string
	date, contentLength                       []byte
}

func (h *extraHeader) write(bw *bufio.Writer) {
	if h.date != nil {
		bw.WriteString("Date: ")
		bw.Write(h.date)
		bw.WriteString("\r\n")
	}
	if h.contentLength != nil {
		bw.WriteString("Content-Length: ")
		bw.Write(h.contentLength)
		bw.WriteString("\r\n")
	}
	for i, v := range [...]string{h.contentType, h.connection, h.transferEncoding} {
		if v != "" {
			bw.WriteString([...]string{"Content-Type: ", "Connection: ", "Transfer-Encoding: "}[i])
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

func writeStatus(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	writeUint(bw, uint64(code), 10)
	if text := http.StatusText(code); text != "" {
		bw.WriteByte(' ')
		bw.WriteString(text)
	} else {
		bw.WriteString(" status code ")
		writeUint(bw, uint64(code), 10)
	}
	bw.WriteString("\r\n")
}

// writeUint writes n in base 10 or 16 (lower case) without a buffer that would escape.
func writeUint(bw *bufio.Writer, n uint64, base uint64) {
	div := uint64(1)
	for n/div >= base {
		div *= base
	}
	for ; div > 0; div /= base {
		bw.WriteByte("0123456789abcdef"[n/div%base])
	}
}

// cachedDate is the Date header of the current second.
var cachedDate atomic.Pointer[dateStamp]

type dateStamp struct {
	sec int64
	b   []byte
}

func appendDate(dst []byte) []byte {
	now := time.Now()
	if d := cachedDate.Load(); d != nil && d.sec == now.Unix() {
		return append(dst, d.b...)
	}
	b := now.UTC().AppendFormat(nil, http.TimeFormat)
	cachedDate.Store(&dateStamp{sec: now.Unix(), b: b})
	return append(dst, b...)
}

func headerGet(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func headerHas(h http.Header, k string) bool {
	_, ok := h[k]
	return ok
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

func suppressedHeaders(status int) []string {
	switch {
	case status == http.StatusNotModified:
		return []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	case !bodyAllowedForStatus(status):
		return excludedNoBody
	}
	return nil
}

func hasToken(v, token string) bool {
	return v != "" && httpguts.HeaderValuesContainsToken([]string{v}, token)
}

func isProtocolSwitch(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && h.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

// foreachHeaderElement is net/http's: fn for each non-empty comma-separated element.
func foreachHeaderElement(v string, fn func(string)) {
	v = textproto.TrimString(v)
	if v == "" {
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = textproto.TrimString(f); f != "" {
			fn(f)
		}
	}
}

// hasCRLF is strings.ContainsAny(s, "\r\n") without building a character set per call.
func hasCRLF(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' {
			return true
		}
	}
	return false
}
