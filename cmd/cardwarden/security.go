package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cardwarden/cardwarden/internal/api"
	"github.com/cardwarden/cardwarden/internal/config"
	"github.com/cardwarden/cardwarden/internal/issuersim"
	"github.com/cardwarden/cardwarden/internal/outbound"
)

// minAdminTokenLength is the shortest admin token serve accepts: 32 characters, e.g. 16 random
// bytes as hex (openssl rand -hex 32 gives 64).
const minAdminTokenLength = 32

// checkProductionSettings refuses what must never run in production, all problems at once,
// each with the setting and its fix. `cardwarden dev` does not call it: its convenient
// defaults are for one developer's machine, and its banner says so.
func checkProductionSettings(command string, f issuerFlags, adminToken string) error {
	var problems []string
	if command == "serve" {
		switch {
		case adminToken == "":
			problems = append(problems, api.EnvAdminToken+" is not set: the management API and the dashboard would have no credential. "+
				"Set it to a long random value, e.g. "+api.EnvAdminToken+"=$(openssl rand -hex 32)")
		case len(adminToken) < minAdminTokenLength:
			problems = append(problems, fmt.Sprintf("%s is %d characters: use at least %d random characters, e.g. %s=$(openssl rand -hex 32)",
				api.EnvAdminToken, len(adminToken), minAdminTokenLength, api.EnvAdminToken))
		}
	}
	if f.simURL != "" {
		switch {
		case f.simWebhookSecret == config.DevSimWebhookSecret:
			problems = append(problems, "CARDWARDEN_SIM_WEBHOOK_SECRET is the simulator's public development secret: anyone could sign \"sim\" events. "+
				"Give the simulator and cardwarden a secret of your own, e.g. CARDWARDEN_SIM_WEBHOOK_SECRET=whsec_$(openssl rand -base64 32)")
		case f.simWebhookSecret == "" && command == "serve":
			problems = append(problems, "CARDWARDEN_SIM_WEBHOOK_SECRET is not set while the sim issuer is (--issuer-url): set the secret the simulator signs with, "+
				"e.g. CARDWARDEN_SIM_WEBHOOK_SECRET=whsec_$(openssl rand -base64 32) for both")
		}
		if f.simAPIKey == "" || f.simAPIKey == issuersim.DefaultAPIKey {
			problems = append(problems, "CARDWARDEN_SIM_API_KEY is unset or the simulator's public default "+issuersim.DefaultAPIKey+
				": set the simulator's and cardwarden's to a random value, e.g. CARDWARDEN_SIM_API_KEY=$(openssl rand -hex 24)")
		}
	}
	if os.Getenv("CARDWARDEN_VAULT_KEY") == "" {
		problems = append(problems, "CARDWARDEN_VAULT_KEY is not set: it must hold the 32-byte AES key (64 hex characters) that seals card credentials; "+
			"generate one with: openssl rand -hex 32")
	}
	if len(problems) == 0 {
		return nil
	}
	return usageError{errors.New("refusing to start with insecure settings (`cardwarden dev` is the way to run with development defaults):\n  - " +
		strings.Join(problems, "\n  - "))}
}

// outboundRules are the process's rules for outbound requests (credential pushes, alerts):
// production's unless CARDWARDEN_OUTBOUND_ALLOW(_HTTP) says otherwise.
func outboundRules() (outbound.Rules, error) {
	r, err := outbound.RulesFromEnv(os.Getenv)
	if err != nil {
		return outbound.Rules{}, usageError{err}
	}
	return r, nil
}

// devOutboundRules are `cardwarden dev`'s: plain http and loopback, plus the operator's.
func devOutboundRules() (outbound.Rules, error) {
	r, err := outboundRules()
	if err != nil {
		return r, err
	}
	dev := outbound.Dev()
	r.AllowHTTP = true
	r.Allow = append(dev.Allow, r.Allow...)
	return r, nil
}
