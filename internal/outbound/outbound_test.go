package outbound_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/cardwarden/cardwarden/internal/outbound"
)

func TestCheckURL(t *testing.T) {
	strict := outbound.Rules{}
	allowInternal := outbound.Rules{Allow: []string{"10.20.0.0/16", "hooks.internal", "192.168.1.5"}}
	cases := []struct {
		rules outbound.Rules
		url   string
		ok    bool
	}{
		{strict, "https://hooks.example.com/cw?x=1", true},
		{strict, "https://93.184.216.34/x", true},
		{strict, "https://[2606:4700::1111]/x", true},
		{strict, "http://hooks.example.com/cw", false},
		{strict, "https://user:pass@hooks.example.com/cw", false},
		{strict, "https://user@hooks.example.com/cw", false},
		{strict, "ftp://hooks.example.com/cw", false},
		{strict, "https:///nohost", false},
		{strict, "https://hooks.example.com:99999/", false},
		{strict, "https://hooks.example.com/\x00", false},
		{strict, "https://hooks.example.com/\xff", false},
		{strict, "https://hooks.example.com/" + strings.Repeat("a", outbound.MaxURLLength), false},
		{strict, "https://127.0.0.1/x", false},
		{strict, "https://127.8.9.10/x", false},
		{strict, "https://[::1]/x", false},
		{strict, "https://[::ffff:127.0.0.1]/x", false},
		{strict, "https://localhost/x", false},
		{strict, "https://LOCALHOST./x", false},
		{strict, "https://api.localhost/x", false},
		{strict, "https://10.0.0.1/x", false},
		{strict, "https://172.16.3.4/x", false},
		{strict, "https://192.168.0.10/x", false},
		{strict, "https://100.64.1.1/x", false},
		{strict, "https://[fd00::1]/x", false},
		{strict, "https://[64:ff9b::a00:1]/x", false},
		{strict, "https://[2002:c0a8:0101::1]/x", false},
		{strict, "https://169.254.169.254/latest/meta-data", false},
		{strict, "https://[fe80::1]/x", false},
		{strict, "https://0.0.0.0/x", false},
		{strict, "https://0.1.2.3/x", false},
		{strict, "https://[::]/x", false},
		{strict, "https://224.0.0.1/x", false},
		{strict, "https://255.255.255.255/x", false},
		{allowInternal, "https://10.20.3.4/x", true},
		{allowInternal, "https://10.21.3.4/x", false},
		{allowInternal, "https://192.168.1.5/x", true},
		{allowInternal, "https://hooks.internal/x", true},
		{allowInternal, "http://hooks.internal/x", false},
		// No allow-list lifts link-local (metadata), unspecified or multicast.
		{outbound.Rules{Allow: []string{"169.254.0.0/16", "0.0.0.0/0"}}, "https://169.254.169.254/x", false},
		{outbound.Rules{Allow: []string{"0.0.0.0/0"}}, "https://0.0.0.0/x", false},
		{outbound.Dev(), "http://127.0.0.1:9000/x", true},
		{outbound.Dev(), "http://localhost:9000/x", true},
		{outbound.Dev(), "http://[::1]:9000/x", true},
		{outbound.Dev(), "http://10.0.0.1/x", false},
		{outbound.Dev(), "http://169.254.169.254/x", false},
	}
	for _, c := range cases {
		err := c.rules.CheckURL(c.url)
		if (err == nil) != c.ok {
			t.Errorf("%+v CheckURL(%q) = %v, want ok=%v", c.rules, c.url, err, c.ok)
		}
		if err != nil {
			if !outbound.IsRefused(err) {
				t.Errorf("CheckURL(%q): %v is not an outbound refusal", c.url, err)
			}
			if strings.Contains(err.Error(), "user:pass@") {
				t.Errorf("CheckURL(%q) error repeats the password: %v", c.url, err)
			}
		}
	}
}

func TestRulesFromEnv(t *testing.T) {
	env := map[string]string{outbound.EnvAllow: " hooks.internal , 10.0.0.0/8,192.168.1.5 ", outbound.EnvAllowHTTP: "true"}
	r, err := outbound.RulesFromEnv(func(k string) string { return env[k] })
	if err != nil || !r.AllowHTTP || len(r.Allow) != 3 {
		t.Fatalf("%+v %v", r, err)
	}
	env[outbound.EnvAllow] = "https://x/y"
	if _, err := outbound.RulesFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("a URL in the allow-list must be refused")
	}
	env = map[string]string{outbound.EnvAllowHTTP: "maybe"}
	if _, err := outbound.RulesFromEnv(func(k string) string { return env[k] }); err == nil {
		t.Fatal("a bad boolean must be refused")
	}
}

// fakeDNS answers every A query with addr, on a UDP socket on the loopback interface, and
// returns a resolver that asks only it.
func fakeDNS(t *testing.T, answers map[string]netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}, Questions: []dnsmessage.Question{q}}
			a, ok := answers[strings.TrimSuffix(q.Name.String(), ".")]
			switch {
			case !ok:
				resp.Header.RCode = dnsmessage.RCodeNameError
			case q.Type == dnsmessage.TypeA && a.Is4():
				resp.Answers = append(resp.Answers, dnsmessage.Resource{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 0},
					Body:   &dnsmessage.AResource{A: a.As4()},
				})
			}
			out, err := resp.Pack()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
}

// noConnect fails the test if the dialer ever gets past the rules' check: a refused address
// must not see a single packet.
func noConnect(t *testing.T) func(string, string, syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		t.Errorf("the dialer would connect to %s", address)
		return errors.New("test: connection blocked")
	}
}

func post(c *http.Client, u string) (*http.Response, error) {
	resp, err := c.Post(u, "application/json", strings.NewReader(`{"number":"4242424242424242"}`))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// A name is checked on the address it resolves to, when the client connects: a host name
// that no static check can judge, resolving to loopback or a private address, is refused.
func TestClientRefusesInternalAddressesAfterResolution(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	res := fakeDNS(t, map[string]netip.Addr{
		"agent.example":    netip.MustParseAddr("127.0.0.1"),
		"internal.example": netip.MustParseAddr("10.0.0.7"),
		"meta.example":     netip.MustParseAddr("169.254.169.254"),
	})

	// Plain http allowed, no allow-list: the name passes the static check, the address does not.
	c := outbound.NewClient(outbound.Rules{AllowHTTP: true}, outbound.Options{Resolver: res})
	if _, err := post(c, "http://agent.example:"+port+"/cards"); !outbound.IsRefused(err) {
		t.Fatalf("name resolving to loopback: %v, want a refusal", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the receiver on loopback was reached")
	}
	guarded := outbound.NewClient(outbound.Rules{AllowHTTP: true}, outbound.Options{Resolver: res, Control: noConnect(t)})
	for _, host := range []string{"internal.example", "meta.example"} {
		if _, err := post(guarded, "http://"+host+"/cards"); !outbound.IsRefused(err) {
			t.Fatalf("%s: %v, want a refusal", host, err)
		}
	}
	// Literal addresses never reach the dialer at all.
	for _, u := range []string{"http://10.1.2.3/x", "http://[fd12::1]/x", "http://169.254.169.254/x", "http://0.0.0.0:" + port + "/x"} {
		if _, err := post(guarded, u); !outbound.IsRefused(err) {
			t.Fatalf("%s: %v, want a refusal", u, err)
		}
	}

	// The operator's allow-list lifts it, by name or by address.
	byName := outbound.NewClient(outbound.Rules{AllowHTTP: true, Allow: []string{"agent.example"}}, outbound.Options{Resolver: res})
	if resp, err := post(byName, "http://agent.example:"+port+"/cards"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("allow-listed name: %v", err)
	}
	byAddr := outbound.NewClient(outbound.Rules{AllowHTTP: true, Allow: []string{"127.0.0.0/8"}}, outbound.Options{Resolver: res})
	if resp, err := post(byAddr, srv.URL); err != nil || resp.StatusCode != 200 {
		t.Fatalf("allow-listed address: %v", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("receiver hits %d, want 2", hits.Load())
	}
	// https is still required unless allowed.
	if _, err := post(outbound.NewClient(outbound.Rules{Allow: []string{"127.0.0.0/8"}}, outbound.Options{}), srv.URL); !outbound.IsRefused(err) {
		t.Fatalf("plain http: %v, want a refusal", err)
	}
}

// A redirect is never followed: the body with the card number goes nowhere else.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	for _, code := range []int{301, 302, 303, 307, 308} {
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/steal", code)
		}))
		c := outbound.NewClient(outbound.Dev(), outbound.Options{})
		resp, err := post(c, redirector.URL)
		redirector.Close()
		if err != nil || resp.StatusCode != code || !outbound.IsRedirect(resp.StatusCode) {
			t.Fatalf("%d: %v %v", code, resp, err)
		}
	}
	if elsewhere.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", elsewhere.Load())
	}
}

// HTTPS_PROXY would make the proxy connect on our behalf, past the address check.
func TestClientIgnoresProxyEnvironment(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { proxied.Add(1) }))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	res := fakeDNS(t, map[string]netip.Addr{"meta.example": netip.MustParseAddr("169.254.169.254")})
	c := outbound.NewClient(outbound.Rules{AllowHTTP: true}, outbound.Options{Resolver: res, Control: noConnect(t)})
	if _, err := post(c, "http://meta.example/latest"); !outbound.IsRefused(err) {
		t.Fatalf("%v, want a refusal", err)
	}
	if proxied.Load() != 0 {
		t.Fatal("the request went through the proxy")
	}
}

func TestRedact(t *testing.T) {
	got := outbound.Redact("https://user:pw@hooks.example.com/services/T/B/secret?token=abc#frag")
	if got != "https://hooks.example.com/services/T/B/secret" {
		t.Fatal(got)
	}
	if _, err := url.Parse(outbound.Redact("::")); err != nil {
		t.Fatal(err)
	}
}
