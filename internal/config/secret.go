package config

import "github.com/spf13/pflag"

// DevSimWebhookSecret signs the embedded simulator's webhooks in `cardwarden dev`. It is in
// this public repository, so anyone can sign "sim" events with it: `serve` and `worker`
// refuse it.
const DevSimWebhookSecret = "whsec_Y2FyZHdhcmRlbi1kZXYtd2ViaG9vay1zZWNyZXQ=" // #nosec G101 -- deliberately public, dev only; serve and worker refuse it

// secretValue is a string flag whose value is never printed: --help shows no default (the
// default may come from the environment) and usage errors repeat nothing of it.
type secretValue struct{ p *string }

func (s secretValue) String() string     { return "" }
func (s secretValue) Set(v string) error { *s.p = v; return nil }
func (s secretValue) Type() string       { return "string" }

// SecretVar registers a flag for a secret: its value is the flag's when given, else the
// environment variable env's, else def, and none of them is ever shown by --help or a usage
// error. Prefer the environment variable: a flag's value is visible in the process list.
func SecretVar(fs *pflag.FlagSet, p *string, name, env, def, usage string) {
	*p = Env(env, def)
	fs.Var(secretValue{p}, name, usage+" (env "+env+"; prefer the variable: flags show in the process list)")
}
