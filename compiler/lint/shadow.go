package lint

import "github.com/ebpfc/ebpfc/compiler/model"

// checkShadowedRules reports a rule when another rule of the same kind
// (allow or deny) and direction, in a policy that applies to every
// endpoint the rule's policy applies to, matches every packet it matches
// (EBPFC001). Of two rules that match the same packets for the same
// endpoints, the later one is reported. Deny rules are compared only with
// deny rules of the same audit mode, as the audit mode of the deciding rule
// changes the verdict.
func (l *linter) checkShadowedRules() error {
	rules := l.rules()
	scopes := l.subjectScopes()
	for _, a := range rules {
		for _, b := range rules {
			if a.order == b.order || a.list != b.list {
				continue
			}
			if a.deny() && a.policy.Audit != b.policy.Audit {
				continue
			}
			if !scopes[a.policy].within(scopes[b.policy]) || !l.ruleWithin(a, b) {
				continue
			}
			// Equal rules for equal subjects: keep the first, report the
			// later.
			if b.order > a.order && scopes[b.policy].within(scopes[a.policy]) && l.ruleWithin(b, a) {
				continue
			}
			verb := "allows"
			if a.deny() {
				verb = "denies"
			}
			l.report("EBPFC001", a.rule.Pos,
				"Remove this rule; if it was meant to differ from "+b.String()+", change one of them.",
				[]Related{{Pos: b.rule.Pos, Message: "the broader rule, " + b.String()}},
				"%s is redundant: %s (%s) already %s every peer and port it matches, for every endpoint it applies to",
				a, b, b.rule.Pos, verb)
			break
		}
	}
	return nil
}

// checkDeniedAllows reports an allow rule when a deny rule of the same
// direction, in a policy that applies to every endpoint the allow rule's
// policy applies to, matches every packet the allow rule matches: deny
// beats allow, so the allow rule never lets anything through (EBPFC002).
// Audited deny rules let packets pass, so they are not counted, and with
// enforcement "never" nothing is denied.
func (l *linter) checkDeniedAllows() error {
	if l.cfg.Settings.Enforcement == model.EnforceNever || l.cfg.Settings.Audit {
		return nil
	}
	rules := l.rules()
	scopes := l.subjectScopes()
	for _, a := range rules {
		if a.deny() {
			continue
		}
		for _, d := range rules {
			if !d.deny() || d.egress() != a.egress() || d.policy.Audit {
				continue
			}
			if !scopes[a.policy].within(scopes[d.policy]) || !l.ruleWithin(a, d) {
				continue
			}
			l.report("EBPFC002", a.rule.Pos,
				"Remove this allow rule, or narrow "+d.String()+" if this traffic should pass.",
				[]Related{{Pos: d.rule.Pos, Message: "the deny rule, " + d.String()}},
				"%s never allows anything: %s (%s) denies every packet it matches, and deny beats allow",
				a, d, d.rule.Pos)
			break
		}
	}
	return nil
}

func (l *linter) subjectScopes() map[*model.Policy]scope {
	m := make(map[*model.Policy]scope, len(l.cfg.Policies))
	for _, p := range l.cfg.Policies {
		m[p] = subjectScope(p)
	}
	return m
}
