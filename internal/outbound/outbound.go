// Package outbound is the one HTTP client for requests that carry card credentials or alerts
// to addresses someone else chose: an agent's credentials_push_url, a policy's
// alerts.webhook_url, the operator's Slack and alert webhooks. It refuses:
//
//   - plain http, unless the operator allows it (Rules.AllowHTTP; `cardwarden dev` does);
//   - redirects: a 3xx is answered to the caller as it is, never followed, so a receiver cannot
//     bounce a card number to a target the checks never saw;
//   - user:password@ in a URL (it would end up in logs and the audit log);
//   - connections to loopback, private (RFC 1918, RFC 4193, CGNAT), link-local (cloud metadata
//     services), multicast, broadcast and unspecified addresses. The check runs in the dialer
//     (net.Dialer.Control) on the address actually being connected to, after DNS resolution, so
//     a name that resolves (or re-resolves: DNS rebinding) to an internal address is refused too.
//
// Operators who need an internal target list it explicitly (Rules.Allow: host names, IPs or
// CIDR prefixes); that lifts the loopback/private refusal for exactly those targets. Link-local,
// multicast, broadcast and unspecified addresses are never allowed: nothing legitimate receives
// webhooks there, and 169.254.169.254 is where cloud credentials live.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Environment variables RulesFromEnv reads.
const (
	// EnvAllow lists internal targets outbound requests may reach: comma-separated host names,
	// IP addresses or CIDR prefixes (e.g. "hooks.internal,10.20.0.0/16").
	EnvAllow = "CARDWARDEN_OUTBOUND_ALLOW"
	// EnvAllowHTTP=true allows plain http URLs (never needed in production).
	EnvAllowHTTP = "CARDWARDEN_OUTBOUND_ALLOW_HTTP"
)

// MaxURLLength bounds an outbound URL.
const MaxURLLength = 2048

// DefaultTimeout bounds one outbound request.
const DefaultTimeout = 10 * time.Second

// Rules say which outbound targets are allowed. The zero value is the production default:
// https only, public addresses only.
type Rules struct {
	// AllowHTTP permits plain http:// URLs.
	AllowHTTP bool
	// Allow lists internal targets that may be reached anyway: host names (exact, case
	// insensitive), IP addresses or CIDR prefixes.
	Allow []string
}

// Dev is what `cardwarden dev` allows: plain http and the loopback interface, so an agent or
// receiver running on the developer's machine works. Never for production.
func Dev() Rules {
	return Rules{AllowHTTP: true, Allow: []string{"localhost", "127.0.0.0/8", "::1/128"}}
}

// RulesFromEnv reads EnvAllow and EnvAllowHTTP through getenv (os.Getenv).
func RulesFromEnv(getenv func(string) string) (Rules, error) {
	var r Rules
	if v := strings.TrimSpace(getenv(EnvAllowHTTP)); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Rules{}, fmt.Errorf("%s=%q: want true or false", EnvAllowHTTP, v)
		}
		r.AllowHTTP = b
	}
	for _, e := range strings.Split(getenv(EnvAllow), ",") {
		if e = strings.TrimSpace(e); e != "" {
			r.Allow = append(r.Allow, e)
		}
	}
	if _, _, err := r.compile(); err != nil {
		return Rules{}, fmt.Errorf("%s: %w", EnvAllow, err)
	}
	return r, nil
}

// compile splits Allow into host names and prefixes.
func (r Rules) compile() (hosts map[string]bool, prefixes []netip.Prefix, err error) {
	hosts = map[string]bool{}
	for _, e := range r.Allow {
		if p, perr := netip.ParsePrefix(e); perr == nil {
			prefixes = append(prefixes, p.Masked())
			continue
		}
		if a, aerr := netip.ParseAddr(e); aerr == nil {
			prefixes = append(prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if e == "" || strings.ContainsAny(e, "/:@ ") {
			return nil, nil, fmt.Errorf("%q is not a host name, IP address or CIDR prefix", e)
		}
		hosts[strings.ToLower(strings.TrimSuffix(e, "."))] = true
	}
	return hosts, prefixes, nil
}

// Error is a refused outbound target. Its message names the reason and the host, never the
// whole URL (webhook URLs often embed a credential in their path or query).
type Error struct {
	Reason string
}

func (e *Error) Error() string { return "outbound request refused: " + e.Reason }

// IsRefused reports whether err (or what it wraps) is a refused outbound target or redirect:
// a permanent failure, retrying cannot help.
func IsRefused(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// CheckURLSyntax checks what no Rules can allow: an absolute http(s) URL with a host, no
// user:password@, valid UTF-8 without control characters, at most MaxURLLength bytes, and not
// a literal link-local, multicast, broadcast or unspecified address. It needs no
// configuration, so the workflow's own policy validation uses it.
func CheckURLSyntax(raw string) error {
	_, err := parseURL(raw)
	return err
}

func parseURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, &Error{Reason: fmt.Sprintf("URL longer than %d bytes", MaxURLLength)}
	}
	if !utf8.ValidString(raw) || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, &Error{Reason: "URL has control characters or invalid UTF-8"}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, &Error{Reason: "not an absolute http(s) URL"}
	}
	if u.User != nil {
		return nil, &Error{Reason: "URL carries a user name or password (user:password@host); put credentials in the path or a header the receiver checks"}
	}
	host := u.Hostname()
	if host == "" {
		return nil, &Error{Reason: "URL has no host"}
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, &Error{Reason: "URL port out of range"}
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if reason := neverAllowed(a.Unmap()); reason != "" {
			return nil, &Error{Reason: fmt.Sprintf("%s is a %s address", host, reason)}
		}
	}
	return u, nil
}

// CheckURL checks a URL before any request: CheckURLSyntax, then https (unless AllowHTTP) and,
// for a literal IP address or a localhost name, that it is public or allow-listed. A host name
// is checked again, on every address it resolves to, when the client connects.
func (r Rules) CheckURL(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && !r.AllowHTTP {
		return &Error{Reason: "plain http is not allowed, use https (operators can allow http with " + EnvAllowHTTP + "=true)"}
	}
	hosts, prefixes, err := r.compile()
	if err != nil {
		return &Error{Reason: err.Error()}
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if hosts[host] {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return checkAddr(a, prefixes)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return &Error{Reason: host + " is the loopback interface (allow it explicitly with " + EnvAllow + ")"}
	}
	return nil
}

// neverAllowed names the address classes no allow-list lifts, or returns "".
func neverAllowed(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	case a.Is4() && a.As4()[0] == 0:
		return "this-network (0.0.0.0/8)"
	case a.Is6() && ipv4Compatible.Contains(a) && !a.IsLoopback():
		return "IPv4-compatible IPv6"
	}
	return ""
}

// Prefixes of IPv6 addresses that embed an IPv4 address: the embedded one is checked too.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
)

// embedded returns the IPv4 address inside a NAT64 or 6to4 address.
func embedded(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// cgnat is the shared address space of RFC 6598 (carrier-grade NAT), internal like RFC 1918.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// internal names loopback and private classes, which an allow-list may lift, or returns "".
func internal(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate(), cgnat.Contains(a):
		return "private"
	}
	if v4, ok := embedded(a); ok {
		if r := neverAllowed(v4); r != "" {
			return r + " (embedded in IPv6)"
		}
		if r := internal(v4); r != "" {
			return r + " (embedded in IPv6)"
		}
	}
	return ""
}

func checkAddr(a netip.Addr, allow []netip.Prefix) error {
	a = a.Unmap().WithZone("")
	if reason := neverAllowed(a); reason != "" {
		return &Error{Reason: fmt.Sprintf("%s is a %s address", a, reason)}
	}
	reason := internal(a)
	if reason == "" {
		return nil
	}
	for _, p := range allow {
		if p.Contains(a) {
			return nil
		}
	}
	return &Error{Reason: fmt.Sprintf("%s is a %s address (allow it explicitly with %s)", a, reason, EnvAllow)}
}

// Control is a net.Dialer Control function that refuses every address the rules do not allow.
// It sees the address being connected to after DNS resolution, once per attempt, so neither a
// name that resolves to an internal address nor a rebinding DNS server gets around it.
func (r Rules) Control(network, address string, _ syscall.RawConn) error {
	_, prefixes, err := r.compile()
	if err != nil {
		return &Error{Reason: err.Error()}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &Error{Reason: fmt.Sprintf("cannot check dial address %q", address)}
	}
	return checkAddr(ap.Addr(), prefixes)
}

// Options configure NewClient.
type Options struct {
	// Timeout bounds one request; DefaultTimeout when zero.
	Timeout time.Duration
	// Resolver resolves host names; net.DefaultResolver when nil (tests use a fake one).
	Resolver *net.Resolver
	// Control runs after the rules' own check passed, for tests.
	Control func(network, address string, c syscall.RawConn) error
}

// NewClient returns the hardened client. Its transport checks each request's URL (CheckURL),
// never uses a proxy from the environment (the proxy would be the one connecting, past the
// address check), refuses every address the rules do not allow when it connects, and never
// follows a redirect: the caller receives the 3xx response.
func NewClient(r Rules, o Options) *http.Client {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	hosts, _, _ := r.compile()
	base := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Resolver: o.Resolver}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, &Error{Reason: "bad dial address"}
		}
		d := *base
		if !hosts[strings.ToLower(strings.TrimSuffix(host, "."))] {
			// An allow-listed name may resolve to an internal address; any other name may not.
			d.Control = func(network, address string, c syscall.RawConn) error {
				if err := r.Control(network, address, c); err != nil {
					return err
				}
				if o.Control != nil {
					return o.Control(network, address, c)
				}
				return nil
			}
		} else if o.Control != nil {
			d.Control = o.Control
		}
		return d.DialContext(ctx, network, addr)
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           20,
		IdleConnTimeout:        60 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Timeout:   o.Timeout,
		Transport: &checkedTransport{rules: r, next: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// checkedTransport checks every request's URL before the transport sees it.
type checkedTransport struct {
	rules Rules
	next  http.RoundTripper
}

func (t *checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.rules.CheckURL(req.URL.String()); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// RedirectError is returned by callers that got a 3xx from an outbound target: redirects are
// never followed.
func RedirectError(status int, host string) error {
	return &Error{Reason: fmt.Sprintf("%s answered a redirect (%d); redirects are not followed", host, status)}
}

// IsRedirect reports whether an HTTP status is a redirect the client did not follow.
func IsRedirect(status int) bool {
	return status >= 300 && status < 400 && status != http.StatusNotModified
}

// Redact returns the URL without user info, query and fragment, for logs and the audit log.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
