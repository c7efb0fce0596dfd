package h1

import (
	"bufio"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// netHTTPReads parses head as net/http's server does: http.ReadRequest, then the checks
// the server adds (conn.readRequest): a Host header for HTTP/1.1, a valid one, valid header
// names and values, HTTP/1.x. nil means the server would answer an error.
func netHTTPReads(head string) *http.Request {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		return nil
	}
	if req.ProtoMajor != 1 {
		return nil
	}
	// ReadRequest drops the Host header; the server looks at it before: read it again.
	br := bufio.NewReader(strings.NewReader(head))
	br.ReadString('\n')
	mh, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil {
		return nil
	}
	hosts, haveHost := mh["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != "CONNECT" {
		return nil
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return nil
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil
			}
		}
	}
	return req
}

// fastReads parses head as the fast server does (sconn.take); ok false means it hands the
// request to net/http.
func fastReads(head string) (ph RequestHead, h http.Header, ok bool) {
	var hs HeadSpace
	if ph, ok = ParseRequestHead(head, &hs); !ok {
		return ph, nil, false
	}
	if _, err := url.ParseRequestURI(ph.Target); err != nil {
		return ph, nil, false
	}
	return ph, hs.H, true
}

// checkSameParse fails when the fast server takes a request that net/http's server would
// not, or reads it differently.
func checkSameParse(t *testing.T, head string) (taken bool) {
	t.Helper()
	ph, h, ok := fastReads(head)
	if !ok {
		return false // net/http reads it, whatever it makes of it
	}
	req := netHTTPReads(head)
	if req == nil {
		t.Fatalf("fast server takes %q, net/http rejects it", head)
	}
	chunked := len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
	switch {
	case req.Method != ph.Method:
		t.Fatalf("%q: method %q, net/http %q", head, ph.Method, req.Method)
	case req.RequestURI != ph.Target || req.URL.RequestURI() != ph.Target:
		t.Fatalf("%q: target %q, net/http %q (URL %q)", head, ph.Target, req.RequestURI, req.URL.RequestURI())
	case req.Host != ph.Host:
		t.Fatalf("%q: host %q, net/http %q", head, ph.Host, req.Host)
	case req.ContentLength != ph.ContentLength || chunked != (ph.ContentLength < 0) || len(req.TransferEncoding) > 0 && !chunked:
		t.Fatalf("%q: length %d, net/http %d %v", head, ph.ContentLength, req.ContentLength, req.TransferEncoding)
	case req.Close != ph.Close:
		t.Fatalf("%q: close %v, net/http %v", head, ph.Close, req.Close)
	case !reflect.DeepEqual(map[string][]string(req.Header), map[string][]string(h)):
		t.Fatalf("%q: headers\n%v\nnet/http\n%v", head, h, req.Header)
	}
	return true
}

var headSeeds = []string{
	"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
	"GET /v1/chat?message=hi HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
	"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n",
	"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
	"PUT /x HTTP/1.1\r\nhost: h\r\ntransfer-encoding: Chunked\r\n\r\n",
	"GET /a/%2F/b;c=d:e@f!$&'()*+,?q=%41&r=/? HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\nX-A: 1\r\nx-a: 2\r\nX-B:\t spaced \t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nCookie: a=b; c=d\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
	"get / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\nHost: h\n\n",
	"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nA-\x7f: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nx-request-id: abc\r\nX-Version: canary\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-H3: again\r\nX-H0: 0\r\nX-H1: 1\r\nX-H2: 2\r\nX-H3: 3\r\nX-H4: 4\r\nX-H5: 5\r\nX-H6: 6\r\nX-H7: 7\r\nX-H8: 8\r\nX-H9: 9\r\nX-H10: 10\r\nX-H11: 11\r\nX-H12: 12\r\nX-H13: 13\r\nX-H14: 14\r\nX-H15: 15\r\nX-H16: 16\r\nX-H17: 17\r\nX-H18: 18\r\nX-H19: 19\r\nx-h3: third\r\nX-H19: again\r\nX-New: 1\r\nX-H0: again\r\n\r\n", // past scanKeys
}

// TestParseHeadTakesCommonRequests: the requests clients usually send are taken, and
// read as net/http reads them; the unusual ones are left to net/http.
func TestParseHeadTakesCommonRequests(t *testing.T) {
	want := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true, 10: true, 21: true, 22: true}
	for i, head := range headSeeds {
		if taken := checkSameParse(t, head); taken != want[i] {
			t.Errorf("%q: taken %v, want %v", head, taken, want[i])
		}
	}
}

// FuzzParseHead compares the fast server's request parser with net/http's on the same
// bytes: whatever the fast server takes, net/http must accept too, with the same method,
// target, Host, headers, length and Connection: close.
//
//	go test ./internal/proxy/h1 -run XXX -fuzz FuzzParseHead -fuzztime 3m
func FuzzParseHead(f *testing.F) {
	for _, s := range headSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		n := HeadEnd([]byte(data))
		if n == 0 {
			return
		}
		checkSameParse(t, data[:n])
	})
}

// checkSameResponseParse fails when the fast server's parser takes an answer's head that
// http.ReadResponse rejects or reads differently.
func checkSameResponseParse(t *testing.T, head, method string) (taken bool) {
	t.Helper()
	var hs HeadSpace
	var resp http.Response
	var body Body
	if !ParseResponseHead(head, &hs, method, &resp, &body, func(string) bool { return false }) {
		return false
	}
	want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(head)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("fast server takes %q, http.ReadResponse rejects it: %v", head, err)
	}
	switch {
	case want.StatusCode != resp.StatusCode || want.Status != resp.Status:
		t.Fatalf("%q: status %d %q, net/http %d %q", head, resp.StatusCode, resp.Status, want.StatusCode, want.Status)
	case want.ContentLength != resp.ContentLength:
		t.Fatalf("%q: length %d, net/http %d", head, resp.ContentLength, want.ContentLength)
	case want.Close != resp.Close:
		t.Fatalf("%q: close %v, net/http %v", head, resp.Close, want.Close)
	case (want.Body == http.NoBody) != (resp.Body == http.NoBody):
		t.Fatalf("%q: no body %v, net/http %v", head, resp.Body == http.NoBody, want.Body == http.NoBody)
	case !reflect.DeepEqual(map[string][]string(want.Header), map[string][]string(hs.H)):
		t.Fatalf("%q: headers\n%v\nnet/http\n%v", head, hs.H, want.Header)
	}
	return true
}

var respSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nDate: Fri, 27 Nov 2026 09:00:00 GMT\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n",
	"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n",
	"HTTP/1.1 200\r\ncontent-length: 0\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
	"HTTP/1.1 599 Custom\r\nContent-Length: 007\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-H3: again\r\nX-H0: 0\r\nX-H1: 1\r\nX-H2: 2\r\nX-H3: 3\r\nX-H4: 4\r\nX-H5: 5\r\nX-H6: 6\r\nX-H7: 7\r\nX-H8: 8\r\nX-H9: 9\r\nX-H10: 10\r\nX-H11: 11\r\nX-H12: 12\r\nX-H13: 13\r\nX-H14: 14\r\nX-H15: 15\r\nX-H16: 16\r\nX-H17: 17\r\nX-H18: 18\r\nX-H19: 19\r\nx-h3: third\r\nX-H19: again\r\nContent-Length: 0\r\nX-H0: again\r\n\r\n", // past scanKeys
	"HTTP/1.0 200 OK\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
}

// TestParseResponseHead: common answers are taken and read as http.ReadResponse reads them.
func TestParseResponseHead(t *testing.T) {
	for i, head := range respSeeds {
		for _, method := range []string{"GET", "HEAD"} {
			if taken := checkSameResponseParse(t, head, method); taken != (i < 9) {
				t.Errorf("%s %q: taken %v, want %v", method, head, taken, i < 9)
			}
		}
	}
}

// FuzzParseResponseHead compares the fast server's parser of instances' answers with
// http.ReadResponse.
//
//	go test ./internal/proxy/h1 -run XXX -fuzz FuzzParseResponseHead -fuzztime 2m
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range respSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data string, head bool) {
		n := HeadEnd([]byte(data))
		if n == 0 {
			return
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		checkSameResponseParse(t, data[:n], method)
	})
}
