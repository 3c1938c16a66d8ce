// Package browsertest runs headless Chromium (Debian's chromium package) for tests that drive
// a page: a test calls New, gets a chromedp context, and the browser is closed when the test
// ends. Without the browser the test is skipped with a message saying how to install it,
// unless CARDWARDEN_REQUIRE_BROWSER=1 (CI), which makes it fail instead.
//
// Only tests import this package.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Environment variables.
const (
	// EnvRequire=1 turns a missing browser into a failure.
	EnvRequire = "CARDWARDEN_REQUIRE_BROWSER"
	// EnvPath overrides the browser binary (DefaultPath).
	EnvPath = "CARDWARDEN_CHROMIUM"
	// EnvScreenshots, when set, is a directory screenshots are copied to as well, so they
	// outlive the test without -artifacts.
	EnvScreenshots = "CARDWARDEN_SCREENSHOT_DIR"
)

// DefaultPath is where Debian's chromium package installs the browser.
const DefaultPath = "/usr/bin/chromium"

// Browser is one headless Chromium tab.
type Browser struct {
	Ctx context.Context
	t   *testing.T

	mu     sync.Mutex
	errors []string
}

// New starts Chromium with one tab, or skips the test when there is no browser. The flags are
// the ones this project's machines need: no sandbox (tests run as root), and no background
// networking, component updates, sync or QUIC, whose connections a loopback-only network
// refuses, each time, slowly.
func New(t *testing.T) *Browser {
	t.Helper()
	path := os.Getenv(EnvPath)
	if path == "" {
		path = DefaultPath
	}
	if _, err := os.Stat(path); err != nil { // #nosec G703 -- the test runner's own browser path setting
		msg := fmt.Sprintf("no Chromium at %s (install Debian's package: apt-get install -y chromium; or set %s)", path, EnvPath)
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %s", EnvRequire, msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	b := &Browser{Ctx: ctx, t: t}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// Start the browser now, so a broken install fails here with its own message.
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(startCtx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium at %s: %v", path, err)
	}
	return b
}

// onEvent records uncaught exceptions and console errors of the page: a dashboard that throws
// is broken even when the assertions pass.
func (b *Browser) onEvent(ev any) {
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil && e.ExceptionDetails.Exception.Description != "" {
			msg = e.ExceptionDetails.Exception.Description
		}
		b.mu.Lock()
		b.errors = append(b.errors, "exception: "+msg)
		b.mu.Unlock()
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
		}
		b.mu.Lock()
		b.errors = append(b.errors, "console.error: "+strings.Join(parts, " "))
		b.mu.Unlock()
	}
}

// PageErrors returns the uncaught exceptions and console errors seen so far.
func (b *Browser) PageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Do runs actions with a bound on how long they may wait, failing the test on error.
func (b *Browser) Do(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page errors: %v)", what, err, b.PageErrors())
	}
}

// WaitFor polls a JavaScript expression in the page until it is truthy, failing the test when
// it is not within timeout. The page updates itself; this only waits for it.
func (b *Browser) WaitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[any](expr, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v (page errors: %v)", what, expr, err, b.PageErrors())
	}
}

// Eval evaluates a JavaScript expression and returns its value.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Screenshot saves a full-page PNG as name under dir (and under CARDWARDEN_SCREENSHOT_DIR when
// set) and returns its path.
func (b *Browser) Screenshot(dir, name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o600); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	if extra := os.Getenv(EnvScreenshots); extra != "" {
		// #nosec G703 -- the screenshot directory is the test runner's own setting (CI's .ci/out)
		if err := os.MkdirAll(extra, 0o750); err == nil {
			_ = os.WriteFile(filepath.Join(extra, name), png, 0o600) // #nosec G703 -- as above
			b.t.Logf("screenshot copied to %s", filepath.Join(extra, name))
		}
	}
	b.t.Logf("screenshot: %s", path)
	return path
}
