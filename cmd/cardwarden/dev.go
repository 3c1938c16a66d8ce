package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/devstack"
	"github.com/cardwarden/cardwarden/internal/issuersim"
)

type devFlags struct {
	dir          string
	host         string
	temporalPort int
	uiPort       int
	headless     bool
	decisions    bool
	listen       string
	simListen    string
	issuer       issuerFlags
	dbURL        string
	logs         logFlags
}

func newDevCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole system in one process: Temporal + Web UI, worker, API, issuer simulator",
		Long: `Run cardwarden on its embedded default, in one process:

  - a real Temporal server, file-backed on SQLite under --dir, with the Web UI
  - the worker, polling the cardwarden, cardwarden-issuer and cardwarden-issuer-urgent task queues
  - the HTTP API (health, webhooks, management API)
  - the issuer simulator, unless --issuer-url points at one running elsewhere

State (Temporal's database, the application database, the vault key, the simulator's cards)
lives under --dir, so stopping with Ctrl-C and starting again finds everything as it was.`,
		Example: `  cardwarden dev
  cardwarden dev --headless --temporal-port 17233 --listen 127.0.0.1:18080 --sim-listen 127.0.0.1:18090`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(cmd, f) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.dir, "dir", config.Env("CARDWARDEN_DIR", config.DefaultDataDir), "state directory (env CARDWARDEN_DIR)")
	fs.StringVar(&f.host, "host", "127.0.0.1", "IP the embedded Temporal server and Web UI bind to")
	fs.IntVar(&f.temporalPort, "temporal-port", 7233, "embedded Temporal frontend gRPC port")
	fs.IntVar(&f.uiPort, "ui-port", 8233, "Temporal Web UI port")
	fs.BoolVar(&f.headless, "headless", false, "do not start the Temporal Web UI")
	fs.BoolVar(&f.decisions, "decisions", false, "the embedded simulator asks cardwarden to decide each purchase in real time (README, Deciding each purchase)")
	fs.StringVar(&f.listen, "listen", config.Env("CARDWARDEN_LISTEN", config.DefaultHTTPListen), "cardwarden HTTP API listen address (env CARDWARDEN_LISTEN)")
	fs.StringVar(&f.simListen, "sim-listen", config.DefaultSimListen, "issuer simulator listen address (ignored with --issuer-url)")
	fs.StringVar(&f.dbURL, "database-url", config.Env("CARDWARDEN_DATABASE_URL", ""), "application database (env CARDWARDEN_DATABASE_URL); default sqlite under --dir")
	bindIssuerFlags(fs, &f.issuer)
	bindLogFlags(fs, &f.logs, "text")
	return cmd
}

func runDev(cmd *cobra.Command, f devFlags) error {
	started := time.Now()
	logger, err := f.logs.logger(cmd)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// Settings first: a bad key is a usage error before anything starts.
	vlt, err := loadVault(filepath.Join(f.dir, "vault.key"))
	if err != nil {
		return err
	}
	cdc, err := loadCodec()
	if err != nil {
		return err
	}
	adminToken, adminTokenSource := os.Getenv(api.EnvAdminToken), "$"+api.EnvAdminToken
	if adminToken == "" {
		adminTokenSource = filepath.Join(f.dir, "admin.token")
		if adminToken, err = api.LoadOrCreateAdminToken(adminTokenSource); err != nil {
			return err
		}
	}

	rules, err := devOutboundRules()
	if err != nil {
		return err
	}
	// Development defaults, never accepted by serve or worker: the simulator's public key and
	// webhook secret.
	if f.issuer.simAPIKey == "" {
		f.issuer.simAPIKey = config.DefaultSimAPIKey
	}
	if f.issuer.simWebhookSecret == "" {
		f.issuer.simWebhookSecret = config.DevSimWebhookSecret
	}

	// Bind every port we own next, so a clash is reported before anything starts.
	apiSrv, err := listenHTTP(f.listen, "listen", nil)
	if err != nil {
		return err
	}
	defer apiSrv.ln.Close()
	apiURL := "http://" + apiSrv.ln.Addr().String()
	runSim := f.issuer.simURL == ""
	var simLn net.Listener
	if runSim {
		if simLn, err = net.Listen("tcp", f.simListen); err != nil {
			return portError(f.simListen, "sim-listen", err)
		}
		defer simLn.Close()
		f.issuer.simURL = "http://" + simLn.Addr().String()
	}
	// The simulator also speaks AI Payment Proxy's dialect, so policies with
	// "issuer": "aipaymentproxy" work in dev too.
	if f.issuer.aippURL == "" && f.issuer.aippAPIKey == "" {
		f.issuer.aippURL, f.issuer.aippAPIKey = f.issuer.simURL, f.issuer.simAPIKey
	}
	reg, err := f.issuer.registry()
	if err != nil {
		return err
	}

	uiPort := f.uiPort
	if f.headless {
		uiPort = 0
	}
	codecURL := ""
	if cdc != nil {
		codecURL = apiURL + "/codec"
	}
	stack, err := devstack.Start(devstack.Config{Dir: filepath.Join(f.dir, "temporal"), Host: f.host, Port: f.temporalPort, UIPort: uiPort, CodecURL: codecURL})
	if err != nil {
		var pe *devstack.PortInUseError
		if errors.As(err, &pe) {
			flag := "temporal-port"
			if pe.Port == uiPort && pe.Port != f.temporalPort {
				flag = "ui-port"
			}
			return fmt.Errorf("%w (choose another with --%s)", err, flag)
		}
		return err
	}
	defer stack.Stop()

	dbURL := f.dbURL
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(f.dir, "cardwarden.db")
	}
	st, err := openStore(ctx, dbURL, true, logger)
	if err != nil {
		return err
	}
	defer st.Close()

	if runSim {
		sim, err := issuersim.NewServer(issuersim.Config{
			APIKey:        f.issuer.simAPIKey,
			WebhookURL:    apiURL + "/v1/webhooks/sim",
			WebhookSecret: f.issuer.simWebhookSecret,
			StatePath:     filepath.Join(f.dir, "issuer-sim.json"),
			Decisions:     devDecisionHook(f.decisions, apiURL),
			Logger:        logger.With("component", "issuer-sim"),
		})
		if err != nil {
			return fmt.Errorf("issuer simulator: %w", err)
		}
		defer sim.Close()
		go func() {
			if err := sim.Serve(ctx, simLn); err != nil && ctx.Err() == nil {
				logger.Error("issuer simulator stopped", "error", err)
			}
		}()
	}

	o, err := newObservability(st, reg, rules, logger)
	if err != nil {
		return err
	}
	temporal := o.withMetrics(encryptedTemporal(config.Temporal{Address: stack.Address(), Namespace: config.DefaultNamespace}, cdc))
	c, err := temporal.Dial(ctx, logger.With("component", "temporal-sdk"), time.Minute)
	if err != nil {
		return err
	}
	defer c.Close()

	workers, err := startWorkers(ctx, c, st, vlt, reg, f.issuer.rateLimit, o, logger)
	if err != nil {
		return err
	}
	defer workers.Stop()

	deps, err := apiDeps(st, c, reg, vlt, cdc, adminToken, o, logger)
	if err != nil {
		return err
	}
	// The embedded Web UI cannot send a token to the codec endpoint, and calls it from its own
	// origin, whatever --ui-port and --host are.
	deps.CodecOpen = true
	if len(deps.CodecOrigins) == 0 {
		deps.CodecOrigins = devCodecOrigins(f.host, uiPort)
	}
	if apiSrv.srv.Handler, err = httpHandler(deps, o, stack.UIURL(), temporal.Namespace); err != nil {
		return err
	}
	apiSrv.serve(logger, "http server")
	redelivered := api.StartRedelivery(ctx, deps, api.RedeliveryOptions{})

	printBanner(cmd.OutOrStdout(), banner{
		took: time.Since(started), temporal: stack.Address(), ui: stack.UIURL(), api: apiURL,
		sim: f.issuer.simURL, simEmbedded: runSim, dir: f.dir, adminTokenSource: adminTokenSource,
		codec: cdc != nil,
	})
	<-ctx.Done()
	fmt.Fprintln(cmd.OutOrStdout(), "\nshutting down…")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	apiSrv.shutdown(shutdownCtx)
	<-redelivered
	return nil
}

type banner struct {
	took                        time.Duration
	temporal, ui, api, sim, dir string
	simEmbedded                 bool
	adminTokenSource            string
	codec                       bool
}

func printBanner(w io.Writer, b banner) {
	ui := b.ui
	if ui == "" {
		ui = "(headless)"
	}
	sim := b.sim
	if !b.simEmbedded {
		sim += " (external)"
	}
	fmt.Fprintf(w, `
cardwarden dev is ready (%s)

  Temporal         %s   namespace default
  Temporal Web UI  %s
  cardwarden API   %s   (dashboard /, /healthz, /readyz)
  admin token      in %s
  issuer simulator %s
  state            %s

Try it (from any folder of this checkout; the CLI finds the admin token itself):
  %s agent create --id demo --daily-limit 25
  temporal workflow start --type AgentCard --task-queue cardwarden --workflow-id agent/demo2 \
    --input '{"agent_id":"demo2","daily_limit_usd":25}'

Ctrl-C stops everything; the next start finds the same state.
`, b.took.Round(10*time.Millisecond), b.temporal, ui, b.api, b.adminTokenSource, sim, b.dir, cliCommand())
	codec := ""
	if b.codec {
		codec = "\n  - /codec decrypts workflow payloads without a token (the embedded Web UI cannot send one)"
	}
	fmt.Fprintf(w, `
Development defaults, for this machine only (cardwarden serve and worker refuse them):
  - the simulator's public API key and webhook secret (anyone can sign "sim" events)
  - outbound pushes and alerts may use plain http and reach the loopback interface
  - the admin token and the vault key are kept in files under %s%s
`, b.dir, codec)
}

// devCodecOrigins are the browser origins of the Web UI `cardwarden dev` serves on host:port,
// which may call the codec endpoint (CARDWARDEN_CODEC_CORS_ORIGINS, when set, wins).
func devCodecOrigins(host string, uiPort int) []string {
	if uiPort == 0 {
		return nil
	}
	p := strconv.Itoa(uiPort)
	out := []string{"http://127.0.0.1:" + p, "http://localhost:" + p}
	if host != "" && host != "127.0.0.1" && host != "localhost" {
		out = append(out, "http://"+net.JoinHostPort(host, p))
	}
	return out
}

// cliCommand is how to run this binary from the working directory: "cardwarden" when that is
// what PATH finds, else its path (./bin/cardwarden after make build).
func cliCommand() string {
	self, err := os.Executable()
	if err != nil {
		return "cardwarden"
	}
	if onPath, err := exec.LookPath("cardwarden"); err == nil {
		if a, err1 := filepath.EvalSymlinks(onPath); err1 == nil {
			if b, err2 := filepath.EvalSymlinks(self); err2 == nil && a == b {
				return "cardwarden"
			}
		}
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, self); err == nil && !strings.HasPrefix(rel, "..") {
			return "./" + rel
		}
	}
	if strings.Contains(self, "go-build") {
		return "go run ./cmd/cardwarden" // go run: no lasting binary; make build gives bin/cardwarden
	}
	return self
}

// devDecisionHook points the embedded simulator's decision hook at the API when on.
func devDecisionHook(on bool, apiURL string) issuersim.DecisionHook {
	if !on {
		return issuersim.DecisionHook{}
	}
	return issuersim.DecisionHook{URL: apiURL + "/v1/authorizations/sim", Fallback: issuersim.FallbackDecline}
}
