package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cardwarden/cardwarden/money"
)

// Spend rules that no card limit can enforce, decided on each purchase where the issuer asks
// cardwarden in real time (README, "Deciding each purchase"): which merchants, how much at
// once, how fast.

// Decision timeout fallbacks (policy.on_decision_timeout).
const (
	OnTimeoutDecline = "decline"
	OnTimeoutApprove = "approve"
)

// MerchantRules allow or block purchases by merchant category code and by merchant name.
// A purchase passes when nothing blocks it and, if any allow rule is set, something allows
// it. Names match case-insensitively, with * for any run of characters.
type MerchantRules struct {
	AllowMCC       []string `json:"allow_mcc,omitempty"`
	BlockMCC       []string `json:"block_mcc,omitempty"`
	AllowMerchants []string `json:"allow_merchants,omitempty"`
	BlockMerchants []string `json:"block_merchants,omitempty"`
	// Presets add maintained allow lists: "ai-providers" (model APIs), "cloud" (compute).
	Presets []string `json:"presets,omitempty"`
}

// Velocity caps purchases in a sliding window: at most MaxCount approvals, or MaxAmountUSD in
// all, within Window.
type Velocity struct {
	Window       Duration      `json:"window,omitzero"`
	MaxCount     int           `json:"max_count,omitzero"`
	MaxAmountUSD *money.Amount `json:"max_amount_usd,omitempty"`
}

// merchantPreset is a maintained allow list: names (patterns) and category codes.
type merchantPreset struct {
	names []string
	mccs  []string
}

// merchantPresets are kept by hand: the model providers and clouds agents pay most.
var merchantPresets = map[string]merchantPreset{
	"ai-providers": {
		names: []string{"*anthropic*", "*openai*", "*cohere*", "*mistral*", "*together*ai*", "*replicate*", "*groq*",
			"*perplexity*", "*hugging*face*", "*fireworks*", "*deepseek*", "*x.ai*", "*elevenlabs*", "*google*gemini*",
			"*vertex*ai*", "model api"},
		mccs: []string{"5734", "5817", "7372"},
	},
	"cloud": {
		names: []string{"*amazon web services*", "*aws*", "*google*cloud*", "*microsoft*azure*", "*azure*", "*digitalocean*",
			"*cloudflare*", "*vercel*", "*fly.io*", "*hetzner*", "*ovh*", "*oracle*cloud*", "*runpod*", "*lambda*labs*", "*modal*"},
		mccs: []string{"4816", "7372", "7379"},
	},
}

// Bounds of the rules.
const (
	maxRuleEntries    = 200
	maxPatternLength  = 100
	maxVelocityWindow = 24 * time.Hour
	maxVelocityCount  = 1000
)

func (r MerchantRules) normalize(errs *FieldErrors) MerchantRules {
	checkMCCs := func(field string, mccs []string) []string {
		if len(mccs) > maxRuleEntries {
			errs.add(field, "at most %d entries", maxRuleEntries)
		}
		out := []string{}
		for i, m := range mccs {
			if len(m) != 4 || strings.Trim(m, "0123456789") != "" {
				errs.add(fmt.Sprintf("%s[%d]", field, i), "%q is not a 4-digit merchant category code", m)
			} else if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
		return out
	}
	checkNames := func(field string, names []string) []string {
		if len(names) > maxRuleEntries {
			errs.add(field, "at most %d entries", maxRuleEntries)
		}
		out := []string{}
		for i, n := range names {
			n = strings.ToLower(strings.TrimSpace(n))
			switch {
			case n == "" || len(n) > maxPatternLength:
				errs.add(fmt.Sprintf("%s[%d]", field, i), "must be 1 to %d characters", maxPatternLength)
			case !slices.Contains(out, n):
				out = append(out, n)
			}
		}
		return out
	}
	r.AllowMCC = checkMCCs("policy.merchant_rules.allow_mcc", r.AllowMCC)
	r.BlockMCC = checkMCCs("policy.merchant_rules.block_mcc", r.BlockMCC)
	r.AllowMerchants = checkNames("policy.merchant_rules.allow_merchants", r.AllowMerchants)
	r.BlockMerchants = checkNames("policy.merchant_rules.block_merchants", r.BlockMerchants)
	var presets []string
	for i, p := range r.Presets {
		if _, ok := merchantPresets[p]; !ok {
			errs.add(fmt.Sprintf("policy.merchant_rules.presets[%d]", i), "unknown preset %q (known: ai-providers, cloud)", p)
		} else if !slices.Contains(presets, p) {
			presets = append(presets, p)
		}
	}
	r.Presets = presets
	if len(r.AllowMCC)+len(r.BlockMCC)+len(r.AllowMerchants)+len(r.BlockMerchants)+len(r.Presets) == 0 {
		return MerchantRules{}
	}
	return r
}

func (v Velocity) normalize(errs *FieldErrors) Velocity {
	if v == (Velocity{}) {
		return v
	}
	if v.Window <= 0 || v.Window.D() > maxVelocityWindow {
		errs.add("policy.velocity.window", "must be between 1s and %s, got %s", Duration(maxVelocityWindow), v.Window)
	}
	if v.MaxCount < 0 || v.MaxCount > maxVelocityCount {
		errs.add("policy.velocity.max_count", "must be between 1 and %d, got %d", maxVelocityCount, v.MaxCount)
	}
	if v.MaxAmountUSD != nil && (*v.MaxAmountUSD <= 0 || v.MaxAmountUSD.Minor() > money.MaxMinor) {
		errs.add("policy.velocity.max_amount_usd", "must be greater than 0, got %s", *v.MaxAmountUSD)
	}
	if v.MaxCount == 0 && v.MaxAmountUSD == nil {
		errs.add("policy.velocity", "set max_count, max_amount_usd or both")
	}
	return v
}

// allows reports whether the rules let a merchant through, and the rule that did not.
func (r MerchantRules) allows(name, mcc string) (bool, string) {
	name = strings.ToLower(strings.TrimSpace(name))
	match := func(patterns []string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return globMatch(p, name) })
	}
	if mcc != "" && slices.Contains(r.BlockMCC, mcc) {
		return false, "merchant_category_blocked"
	}
	if match(r.BlockMerchants) {
		return false, "merchant_blocked"
	}
	allowed := len(r.AllowMCC) == 0 && len(r.AllowMerchants) == 0 && len(r.Presets) == 0
	if mcc != "" && slices.Contains(r.AllowMCC, mcc) || match(r.AllowMerchants) {
		allowed = true
	}
	for _, p := range r.Presets {
		pre := merchantPresets[p]
		if match(pre.names) || (mcc != "" && slices.Contains(pre.mccs, mcc)) {
			allowed = true
		}
	}
	if !allowed {
		return false, "merchant_not_allowed"
	}
	return true, ""
}

// globMatch reports whether s matches pattern, where * matches any run of characters
// (including none) and everything else matches itself.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}
