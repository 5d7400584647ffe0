// An HTTPS server and client on Go's crypto/tls and net/http (standard library only), for
// tests/tests/tls_go.rs:
//
//	serve ADDR CERT KEY              HTTP/1.1 and HTTP/2 (ALPN); /teapot answers 418
//	get CAFILE URL h1|h2 DELAY_MS    one GET after DELAY_MS; prints "LOCALPORT CODE PROTO"
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"time"
)

func main() {
	switch os.Args[1] {
	case "serve":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/teapot" {
				w.WriteHeader(http.StatusTeapot)
			}
			fmt.Fprintf(w, "hello over %s\n", r.Proto)
		})
		fmt.Fprintln(os.Stderr, http.ListenAndServeTLS(os.Args[2], os.Args[3], os.Args[4], nil))
		os.Exit(1)
	case "get":
		pem, err := os.ReadFile(os.Args[2])
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		if os.Args[4] == "h2" {
			tr.ForceAttemptHTTP2 = true
		} else {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		delay, _ := strconv.Atoi(os.Args[5])
		time.Sleep(time.Duration(delay) * time.Millisecond)
		port := 0
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
			port = i.Conn.LocalAddr().(*net.TCPAddr).Port
		}}
		req, _ := http.NewRequest("GET", os.Args[3], nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		r, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		io.ReadAll(r.Body)
		r.Body.Close()
		fmt.Printf("%d %d %s\n", port, r.StatusCode, r.Proto)
	}
}
