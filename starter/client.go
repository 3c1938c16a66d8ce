package starter

import (
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/cardwarden/cardwarden/internal/ledger"
	"github.com/cardwarden/cardwarden/internal/outbound"
	"github.com/cardwarden/cardwarden/internal/store"
	"github.com/cardwarden/cardwarden/internal/vault"
)

// Options configure a Client. Only the Temporal client is required; the store enables tokens and
// ReportEvent.
type Options struct {
	// Store is the application database: agents' token hashes and the event ledger.
	Store *store.Store
	// DataConverter must be the Temporal client's own (it decodes the schedule's arguments);
	// the SDK default when nil.
	DataConverter converter.DataConverter
	// Issuers, when set, are the configured issuer names: StartAgent rejects a policy naming any
	// other one before starting a workflow that would fail on it.
	Issuers []string
	// SignalTimeout bounds signalling an event to its workflow, so a webhook is answered (503)
	// while the issuer still waits rather than after it gave up. 10s when zero.
	SignalTimeout time.Duration
	// StateTimeout bounds the state query StartAgent uses to compare policies. 5s when zero.
	StateTimeout time.Duration
	// Logger receives operational messages, never card data; slog.Default when nil.
	Logger *slog.Logger
	// Now is the clock for ledger timestamps; time.Now when nil.
	Now func() time.Time
	// Vault seals each agent's credential-push key (PushKey) when a token is issued or
	// replaced. Without it no push key is stored and pushes to that agent are refused until its
	// token is replaced by a process that has the vault key.
	Vault *vault.Vault
	// Outbound are the rules the policy's outbound URLs must pass (credentials_push_url,
	// alerts.webhook_url); the zero value is production's: https, no internal address.
	Outbound outbound.Rules
}

// Client drives agents' workflows. It is safe for concurrent use.
type Client struct {
	tc       client.Client
	store    *store.Store
	ledger   *ledger.Ledger
	dc       converter.DataConverter
	issuers  []string
	sigTO    time.Duration
	stateTO  time.Duration
	log      *slog.Logger
	now      func() time.Time
	vault    *vault.Vault
	outbound outbound.Rules
}

// New wraps a Temporal client.
func New(tc client.Client, opts Options) *Client {
	c := &Client{
		tc: tc, store: opts.Store, dc: opts.DataConverter, issuers: opts.Issuers,
		sigTO: opts.SignalTimeout, stateTO: opts.StateTimeout, log: opts.Logger, now: opts.Now,
		vault: opts.Vault, outbound: opts.Outbound,
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.store != nil {
		c.ledger = &ledger.Ledger{Store: c.store}
	}
	if c.dc == nil {
		c.dc = converter.GetDefaultDataConverter()
	}
	if c.sigTO <= 0 {
		c.sigTO = 10 * time.Second
	}
	if c.stateTO <= 0 {
		c.stateTO = 5 * time.Second
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Temporal returns the underlying Temporal client.
func (c *Client) Temporal() client.Client { return c.tc }

// Store returns the application database, or nil.
func (c *Client) Store() *store.Store { return c.store }
