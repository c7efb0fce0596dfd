// Command upstream is the benchmark's upstream: a small fast HTTP/1.1 keep-alive server that
// answers every request 200 with a short body naming itself.
//
//	go run ./bench/upstream -addr 127.0.0.1:9001 -name stable
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "stable", "name in the body and X-Upstream")
	flag.Parse()
	body := []byte(`{"upstream":"` + *name + `","ok":true}` + "\n")
	clen := strconv.Itoa(len(body))
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{clen}
		h["X-Upstream"] = []string{*name}
		w.Write(body)
	})))
}
