package lint

import (
	"fmt"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// checkDefaultOpen reports, per endpoint and direction, traffic that no
// policy enforces (EBPFC008): with enforcement "default" an endpoint is
// open in a direction until a policy that selects it has rules for that
// direction (or asks for default deny). With enforcement "never" one
// warning says that everything is open; with "always" nothing is.
func (l *linter) checkDefaultOpen() error {
	switch l.cfg.Settings.Enforcement {
	case model.EnforceAlways:
		return nil
	case model.EnforceNever:
		if len(l.cfg.Endpoints) > 0 {
			l.reportAs("EBPFC008", Warning, l.cfg.Settings.At("enforcement"),
				"Remove settings.enforcement (or set it to \"default\") to enforce the policies.", nil,
				"settings.enforcement is \"never\": every endpoint is open in both directions and no policy is enforced")
		}
		return nil
	}
	for _, ep := range l.cfg.Endpoints {
		for _, egress := range []bool{false, true} {
			enforced := false
			for _, p := range l.cfg.Policies {
				if p.Enforces(egress) && l.selects(p, ep) {
					enforced = true
					break
				}
			}
			if enforced {
				continue
			}
			dir, verb := "ingress", "to"
			if egress {
				dir, verb = "egress", "from"
			}
			l.report("EBPFC008", ep.Pos,
				fmt.Sprintf("If %s must be restricted, select %s with a policy that has %s rules (%s: [{}] alone denies all %s), or set settings.enforcement: \"always\".", dir, ep.ID(), dir, dir, dir),
				nil, "endpoint %s is open for %s: no policy with %s rules selects it, so all traffic %s it is allowed", ep.ID(), dir, dir, verb)
		}
	}
	return nil
}

// checkBroadIngress reports allow rules that let every address of the
// internet reach every port (EBPFC009): a peer that contains world (entity
// world or all, a CIDR of length 0, or no peer field at all) together
// with every port (no toPorts, or a port entry for every port of a
// protocol).
func (l *linter) checkBroadIngress() error {
	for _, r := range l.rules() {
		if r.list != "ingress" || matchesNothing(r.rule) {
			continue
		}
		ports, ok := allPorts(r.rule)
		if !ok {
			continue
		}
		subjects := "endpoints"
		if r.policy.NodeSelector != nil {
			subjects = "nodes"
		}
		for _, w := range worldPeers(r.rule) {
			l.report("EBPFC009", w.pos, "", nil, "%s lets %s reach %s of the %s it selects", r, w.what, ports, subjects)
		}
	}
	return nil
}

type worldPeer struct {
	pos  source.Pos
	what string
}

// worldPeers returns the peers of r that contain every world address.
func worldPeers(r *model.Rule) []worldPeer {
	if !r.HasPeers {
		return []worldPeer{{r.Pos, "every peer (the rule has ports but no peers)"}}
	}
	var out []worldPeer
	for _, e := range r.Entities {
		if e.Entity == model.EntityWorld || e.Entity == model.EntityAll {
			out = append(out, worldPeer{e.Pos, fmt.Sprintf("every peer of entity %s", e.Entity)})
		}
	}
	for _, c := range r.CIDRs {
		if c.CIDR.Bits() == 0 {
			what := "every address in " + c.CIDR.String()
			if len(c.Except) > 0 {
				what += " but its excepts"
			}
			out = append(out, worldPeer{c.Pos, what})
		}
	}
	return out
}

// allPorts reports whether r allows every port of some protocol, and
// says which.
func allPorts(r *model.Rule) (string, bool) {
	if len(r.Ports) == 0 && len(r.ICMPs) == 0 {
		return "every protocol and port", true
	}
	for _, pr := range r.Ports {
		if pr.Name != "" {
			continue
		}
		if s := portSpan(pr); s.lo <= 1 && s.hi == 65535 {
			if protocolOf(pr) == model.ProtoAny {
				if pr.Port == 0 {
					return "every protocol and port", true
				}
				return "every TCP, UDP and SCTP port", true
			}
			return "every " + string(pr.Protocol) + " port", true
		}
	}
	return "", false
}
