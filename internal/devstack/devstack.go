// Package devstack runs a real Temporal server and its Web UI inside the cardwarden process,
// file-backed on SQLite, for `cardwarden dev`. It is the only package of the binary that links
// go.temporal.io/server, which is large and slow to build.
package devstack

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	postgresqlplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	"github.com/cardwarden/cardwarden/internal/temporalsetup"
)

// SearchAttributes are the custom search attributes cardwarden's workflows set. They are
// registered on the namespace when the database is created.
func SearchAttributes() map[string]enumspb.IndexedValueType { return temporalsetup.SearchAttributes() }

// Config says where the embedded server keeps its state and listens.
type Config struct {
	Dir       string // state directory; the database is Dir/temporal.db
	Host      string // IP to bind, 127.0.0.1 by default
	Port      int    // frontend gRPC port (7233)
	UIPort    int    // Web UI port (8233); 0 disables the UI
	Namespace string // "default"
	CodecURL  string // codec server endpoint the UI uses to decode payloads, optional
	LogLevel  string // server log level written to Dir/temporal.log: debug|info|warn|error
	// Postgres, when set, keeps Temporal's state in PostgreSQL, as a production cluster does,
	// instead of SQLite under Dir. Its schema must be set up beforehand with Temporal's SQL
	// tool (deploy/topology.TemporalSchemaSteps), and no namespace is created here: `cardwarden
	// setup` creates it, as it must on a real cluster.
	Postgres *Postgres
}

// Postgres is where a Temporal server on PostgreSQL keeps its state.
type Postgres struct {
	Addr               string // host:port
	User, Password     string
	Database           string // the main store
	VisibilityDatabase string // the visibility store
	HistoryShards      int32  // fixed for the cluster's life; 4 when zero
}

// PortInUseError says which port could not be bound, so callers can name the flag.
type PortInUseError struct {
	Port int
	What string
	Err  error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d (%s) is already in use: %v", e.Port, e.What, e.Err)
}

// Stack is a running embedded Temporal server with its UI.
type Stack struct {
	server  temporal.Server
	ui      *uiserver.Server
	address string
	uiURL   string
}

// Address is the frontend's host:port for SDK clients.
func (s *Stack) Address() string { return s.address }

// UIURL is the Web UI's base URL, empty when the UI is disabled.
func (s *Stack) UIURL() string { return s.uiURL }

// Start creates the schema and namespace on first run and starts the server and the UI. It
// returns once the frontend accepts connections.
func Start(cfg Config) (*Stack, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	if err := CheckPortFree(cfg.Host, cfg.Port, "Temporal frontend"); err != nil {
		return nil, err
	}
	if cfg.UIPort != 0 {
		if err := CheckPortFree(cfg.Host, cfg.UIPort, "Temporal Web UI"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", cfg.Dir, err)
	}

	conf, err := serverConfig(cfg)
	if err != nil {
		return nil, err
	}
	logger := serverLogger(cfg)
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("temporal authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("temporal claim mapper: %w", err)
	}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for _, svc := range []primitives.ServiceName{primitives.FrontendService, primitives.MatchingService, primitives.HistoryService, primitives.WorkerService} {
		hosts[svc] = static.SingleLocalHost(net.JoinHostPort(cfg.Host, strconv.Itoa(conf.Services[string(svc)].RPC.GRPCPort)))
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
			dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
			dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
			dynamicconfig.FrontendPersistenceMaxQPS.Key():                    10000,
			dynamicconfig.HistoryPersistenceMaxQPS.Key():                     45000,
			// One matching host: partitions only add forwarding between them, and they split
			// a queue's rate limit (the issuer queue's) across partitions, of which the two
			// default pollers see only some at a time.
			dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
			dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("build temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	st := &Stack{server: srv, address: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))}
	if cfg.UIPort != 0 {
		st.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                cfg.Host,
			Port:                cfg.UIPort,
			TemporalGRPCAddress: st.address,
			EnableUI:            true,
			DefaultNamespace:    cfg.Namespace,
			Codec:               uiconfig.Codec{Endpoint: cfg.CodecURL},
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
		}))
		uiErr := make(chan error, 1)
		go func() { uiErr <- st.ui.Start() }()
		st.uiURL = "http://" + net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.UIPort))
		if err := waitListening(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.UIPort)), 10*time.Second, uiErr); err != nil {
			st.Stop()
			return nil, fmt.Errorf("start temporal web UI: %w", err)
		}
	}
	if err := waitListening(st.address, 30*time.Second, nil); err != nil {
		st.Stop()
		return nil, fmt.Errorf("temporal frontend: %w", err)
	}
	return st, nil
}

// Stop shuts the UI and the server down.
func (s *Stack) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	if s.server != nil {
		_ = s.server.Stop()
	}
}

// CheckPortFree returns a PortInUseError when host:port cannot be bound.
func CheckPortFree(host string, port int, what string) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return &PortInUseError{Port: port, What: what, Err: err}
	}
	return l.Close()
}

func waitListening(addr string, timeout time.Duration, failed <-chan error) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case ferr := <-failed:
			if ferr != nil {
				return ferr
			}
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func serverLogger(cfg Config) log.Logger {
	lc := log.Config{Level: cfg.LogLevel, Format: "json", OutputFile: filepath.Join(cfg.Dir, "temporal.log")}
	return log.NewZapLogger(log.BuildZapLogger(lc))
}

func serverConfig(cfg Config) (*config.Config, error) {
	if cfg.Postgres != nil {
		return postgresConfig(cfg)
	}
	dbFile := filepath.Join(cfg.Dir, "temporal.db")
	sqlConf := config.SQL{PluginName: sqliteplugin.PluginName, DatabaseName: dbFile, ConnectAttributes: map[string]string{"mode": "rwc"}}
	if _, err := os.Stat(dbFile); errors.Is(err, os.ErrNotExist) {
		if err := sqliteschema.SetupSchema(&sqlConf); err != nil {
			return nil, fmt.Errorf("set up temporal schema in %s: %w", dbFile, err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, cfg.Namespace, false, SearchAttributes())
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", cfg.Namespace, err)
	}
	if err := sqliteschema.CreateNamespaces(&sqlConf, ns); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", cfg.Namespace, err)
	}
	conf, err := baseConfig(cfg)
	if err != nil {
		return nil, err
	}
	conf.Persistence.DefaultStore = "sqlite-default"
	conf.Persistence.VisibilityStore = "sqlite-default"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite-default": {SQL: &sqlConf}}
	return conf, nil
}

// postgresConfig is serverConfig on PostgreSQL.
func postgresConfig(cfg Config) (*config.Config, error) {
	pg := cfg.Postgres
	sqlConf := func(db string) *config.SQL {
		return &config.SQL{PluginName: postgresqlplugin.PluginName, DatabaseName: db, ConnectAddr: pg.Addr, ConnectProtocol: "tcp",
			User: pg.User, Password: pg.Password, MaxConns: 20, MaxIdleConns: 20, MaxConnLifetime: time.Hour}
	}
	conf, err := baseConfig(cfg)
	if err != nil {
		return nil, err
	}
	conf.Persistence.DefaultStore = "postgres-default"
	conf.Persistence.VisibilityStore = "postgres-visibility"
	conf.Persistence.NumHistoryShards = max(pg.HistoryShards, 4)
	conf.Persistence.DataStores = map[string]config.DataStore{
		"postgres-default":    {SQL: sqlConf(pg.Database)},
		"postgres-visibility": {SQL: sqlConf(pg.VisibilityDatabase)},
	}
	return conf, nil
}

// clusterName is the one cluster's name.
const clusterName = "active"

// baseConfig is everything but persistence: one cluster, the four services on the host.
func baseConfig(cfg Config) (*config.Config, error) {
	frontend := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	httpPort, err := freePort(cfg.Host)
	if err != nil {
		return nil, err
	}
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = cfg.Host
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             frontend,
				HTTPAddress:            net.JoinHostPort(cfg.Host, strconv.Itoa(httpPort)),
				ClusterID:              "cardwarden-dev",
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = cfg.Host
		if name == "frontend" {
			svc.RPC.GRPCPort = cfg.Port
			svc.RPC.HTTPPort = httpPort
		} else {
			p, err := freePort(cfg.Host)
			if err != nil {
				return nil, err
			}
			svc.RPC.GRPCPort = p
		}
		conf.Services[name] = svc
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = frontend
	return &conf, nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
