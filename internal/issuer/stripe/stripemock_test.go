package stripe_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// stripeMockVersion is the stripe-mock the tests build and start (scripts/stripe-mock.sh's
// default, checked by TestStripeMockVersionMatchesScript).
const stripeMockVersion = "v0.203.0"

// ownStripeMock is the stripe-mock this test binary started, when none was running.
var ownStripeMock struct {
	once sync.Once
	url  string
	err  error
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if c := ownStripeMock.cmd; c != nil {
		_ = c.Process.Kill()
		<-ownStripeMock.done
		if code == 0 {
			_ = os.Remove(ownStripeMock.log)
		}
	}
	os.Exit(code)
}

// startStripeMock builds stripe-mock from source through the Go module proxy (pinned, into the
// same per-version cache directory as scripts/stripe-mock.sh, so it is built once per machine)
// and starts it on a free port for the rest of this test binary's run.
func startStripeMock() (string, error) {
	ownStripeMock.once.Do(func() {
		ownStripeMock.url, ownStripeMock.err = launchStripeMock()
	})
	return ownStripeMock.url, ownStripeMock.err
}

func launchStripeMock() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(cache, "cardwarden", "stripe-mock", stripeMockVersion)
	bin := filepath.Join(binDir, "stripe-mock")
	if _, err := os.Stat(bin); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		install := exec.CommandContext(ctx, "go", "install", "github.com/stripe/stripe-mock@"+stripeMockVersion)
		install.Env = append(os.Environ(), "GOBIN="+binDir, "GOFLAGS=-mod=mod")
		if out, err := install.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build stripe-mock %s: %v: %s", stripeMockVersion, err, out)
		}
	}
	// Its HTTPS listener too (default :12112) gets a free port, so it never meets another's.
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	tlsAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	logFile, err := os.CreateTemp("", "stripe-mock-*.log")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "-http-addr", addr, "-https-addr", tlsAddr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	ownStripeMock.cmd, ownStripeMock.done, ownStripeMock.log = cmd, done, logFile.Name()
	u := "http://" + addr
	deadline := time.Now().Add(time.Minute)
	for {
		if stripeMockAnswers(u) == nil {
			return u, nil
		}
		select {
		case <-done:
			return "", fmt.Errorf("stripe-mock exited; its log is %s", logFile.Name())
		default:
		}
		if time.Now().After(deadline) {
			return "", errors.New("stripe-mock did not answer within a minute; its log is " + logFile.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// stripeMockAnswers says whether a stripe-mock serves the Issuing API at u.
func stripeMockAnswers(u string) error {
	req, _ := http.NewRequest("GET", u+"/v1/issuing/cards", nil)
	req.SetBasicAuth(mockKey, "")
	res, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New("GET /v1/issuing/cards: HTTP " + strconv.Itoa(res.StatusCode))
	}
	return nil
}

func TestStripeMockVersionMatchesScript(t *testing.T) {
	b, err := os.ReadFile("../../../scripts/stripe-mock.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`STRIPE_MOCK_VERSION:-(v[0-9.]+)`).FindSubmatch(b)
	if m == nil || string(m[1]) != stripeMockVersion {
		t.Fatalf("scripts/stripe-mock.sh's default version is %q, the tests' %s", m, stripeMockVersion)
	}
}

// The tests need no stripe-mock started by hand: they build and start their own.
func TestStartsItsOwnStripeMock(t *testing.T) {
	u, err := startStripeMock()
	if err != nil {
		if os.Getenv("CARDWARDEN_REQUIRE_STRIPE_MOCK") == "1" {
			t.Fatal(err)
		}
		t.Skip("cannot build or start stripe-mock here: ", err)
	}
	if err := stripeMockAnswers(u); err != nil {
		t.Fatal(err)
	}
	a := newAdapter(t, u)
	if _, err := a.ListAuthorizations(context.Background(), "ic_cardwarden", time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("the adapter against the started stripe-mock: %v", err)
	}
}
