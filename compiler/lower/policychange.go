package lower

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
)

// ChangePolicies records that cfg is current — the configuration the
// Incremental holds with its policies replaced by cfg.Policies; its
// cluster, nodes, namespaces, endpoints and settings must be those the
// Incremental holds — and returns the change: the policy map entries that
// change, the node's cookies (Delta.Cookies), and the programs of the local
// endpoints whose enforcement or audit changes in a direction
// (Delta.Replaced). The result equals the difference between Node's
// results for the two configurations.
//
// Only the endpoints a changed policy selects, before or after, are
// computed again. A policy is changed when it was added or removed, when
// its selector, rules, flags or position changed, or when its rules'
// cookies moved (a rule added or removed before them).
//
// It returns ErrNeedsFullCompile when the change cannot be applied
// incrementally: the prefixes the policies name change (they number the
// CIDR identities), the number of rules crosses a power of two (the
// default-deny cookies move: slots.go), an endpoint becomes open in both
// directions or stops being so (it gains or loses its policy map and
// programs), or the host firewall's programs would change. The Incremental
// may then have changed and must not be used again.
func (inc *Incremental) ChangePolicies(cfg *model.Config) (*Delta, error) {
	l := inc.l
	cidrs := policyCIDRs(cfg)
	if !maps.Equal(cidrs, inc.cidrs) {
		return nil, ErrNeedsFullCompile
	}
	cookieOf, cookies := ruleCookies(cfg)
	if ruleCookieSpace(uint32(len(cookies))) != ruleCookieSpace(l.numRuleCookies) {
		return nil, ErrNeedsFullCompile
	}

	// Which policies changed, and which may select other subjects now.
	old := make(map[string]*model.Policy, len(l.cfg.Policies))
	for _, p := range l.cfg.Policies {
		old[p.ID()] = p
	}
	byID := make(map[string]*model.Policy, len(cfg.Policies))
	order := make(map[*model.Policy]int, len(cfg.Policies))
	changed := make(map[string]bool)
	reselect := make(map[string]bool)
	rules := make(map[policyRule][]uint32, len(l.sel.rules))
	hostTouched := false
	for i, p := range cfg.Policies {
		id := p.ID()
		byID[id], order[p] = p, i
		q := old[id]
		switch {
		case q == nil || !sameSelection(q, p):
			changed[id], reselect[id] = true, true
		case q.Pos != p.Pos || !EqualPolicy(q, p, false) || !sameRuleCookies(q, p, l.cookieOf, cookieOf):
			changed[id] = true
		}
		if changed[id] && (p.NodeSelector != nil || q != nil && q.NodeSelector != nil) {
			hostTouched = true
		}
		// The peers of rules that did not change stay resolved.
		if q != nil && q.Namespace == p.Namespace && q.ClusterWide == p.ClusterWide {
			for k, list := range ruleLists(p) {
				qlist := ruleLists(q)[k]
				for j, r := range list {
					if j < len(qlist) && equalRule(qlist[j], r, false) {
						if ids, ok := l.sel.rules[policyRule{q, qlist[j]}]; ok {
							rules[policyRule{p, r}] = ids
						}
					}
				}
			}
		}
	}
	for id, q := range old {
		if byID[id] == nil {
			changed[id], reselect[id] = true, true
			hostTouched = hostTouched || q.NodeSelector != nil
		}
	}

	// From here on the change is applied.
	l.cfg = cfg
	l.cookieOf, l.cookies, l.numRuleCookies = cookieOf, cookies, uint32(len(cookies))
	l.sel.rules = rules
	inc.cidrs = cidrs
	var reselected []*model.Policy
	for id := range reselect {
		if p := byID[id]; p != nil {
			reselected = append(reselected, p)
		}
	}
	affected := make(map[*identity]bool)
	for id, list := range l.selecting {
		if id.class != classEndpoint {
			continue // the host's subject: below
		}
		hit := false
		next := make([]*model.Policy, 0, len(list))
		for _, p := range list {
			hit = hit || changed[p.ID()]
			if !reselect[p.ID()] {
				next = append(next, byID[p.ID()])
			}
		}
		for _, p := range reselected {
			if selectsIdentity(p, id) {
				next = append(next, p)
				hit = true
			}
		}
		slices.SortFunc(next, func(a, b *model.Policy) int { return cmp.Compare(order[a], order[b]) })
		l.selecting[id] = next
		if hit {
			affected[id] = true
		}
	}

	d := &Delta{}
	var deltas []MapDelta
	var replaced []*model.Endpoint
	sigs := make(map[*model.Endpoint]endpointSig) // of the replaced endpoints, before
	for _, ep := range l.endpoints {
		if !affected[l.ids.byEndpoint[ep]] {
			continue
		}
		was := inc.sig[ep]
		entries, sig, err := inc.policyEntries(ep)
		if err != nil {
			return nil, err
		}
		if sig.tracked() != was.tracked() {
			return nil, ErrNeedsFullCompile
		}
		inc.sig[ep] = sig
		if !sig.sameCode(was) {
			sigs[ep] = was
			if inc.base[ep] != sanitizeIdentifier(ep.Namespace+"_"+ep.Name) {
				return nil, ErrNeedsFullCompile
			}
			replaced = append(replaced, ep)
		}
		name, ok := inc.policyMap[ep]
		if !ok {
			continue
		}
		if md := diffEntryLists(name, inc.policy[name], entries); md != nil {
			deltas = append(deltas, *md)
		}
		inc.policy[name] = entries
	}
	if err := inc.changeHost(hostTouched, &deltas); err != nil {
		return nil, err
	}
	if len(replaced) > 0 {
		res, err := inc.endpointPrograms(replaced)
		if err != nil {
			return nil, err
		}
		// Only the directions whose enforcement or audit changed have new
		// code: the entry program depends on enforcement, the policy
		// programs on both.
		keep := make(map[string]bool)
		for _, ep := range replaced {
			was, now := sigs[ep], inc.sig[ep]
			for _, dir := range []direction{ingress, egress} {
				name := "to_" + inc.base[ep]
				if dir == egress {
					name = "from_" + inc.base[ep]
				}
				if was.enforced[dir] != now.enforced[dir] {
					keep[name] = true
				}
				if was.enforced[dir] != now.enforced[dir] || was.audit[dir] != now.audit[dir] {
					keep[name+"_ipv4"], keep[name+"_ipv6"] = true, true
				}
			}
		}
		keepPrograms(res, keep)
		d.Replaced, d.ProgramsChanged = res, true
	}
	slices.SortFunc(deltas, func(a, b MapDelta) int { return strings.Compare(a.Map, b.Map) })
	d.Maps = deltas
	d.Cookies = inc.cookies()
	return d, nil
}

// changeHost computes the host's policy entries again when a policy with a
// nodeSelector changed. The host's programs must stay as they are: a host
// that gains or loses its programs, or whose enforcement or audit changes,
// needs a full compile.
func (inc *Incremental) changeHost(touched bool, deltas *[]MapDelta) error {
	l := inc.l
	if !touched {
		return nil
	}
	var pols []*model.Policy
	for _, p := range l.cfg.Policies {
		if p.NodeSelector != nil && p.NodeSelector.Matches(l.node.Labels) {
			pols = append(pols, p)
		}
	}
	if l.host == nil {
		if len(pols) > 0 {
			return ErrNeedsFullCompile
		}
		return nil
	}
	l.selecting[l.ids.byEndpoint[l.host]] = pols
	was := inc.sig[l.host]
	if err := inc.updateHost(deltas); err != nil {
		return err
	}
	if now := inc.sig[l.host]; !now.tracked() || !now.sameCode(was) {
		return ErrNeedsFullCompile
	}
	return nil
}

// ruleLists returns a policy's four rule lists, in cookie order.
func ruleLists(p *model.Policy) [4][]*model.Rule {
	return [4][]*model.Rule{p.Ingress, p.Egress, p.IngressDeny, p.EgressDeny}
}

// sameRuleCookies reports whether the rules of q (numbered by oldOf) and
// of p (numbered by newOf) have the same cookies, rule by rule.
func sameRuleCookies(q, p *model.Policy, oldOf, newOf map[*model.Rule]uint32) bool {
	ql, pl := ruleLists(q), ruleLists(p)
	for k := range ql {
		if len(ql[k]) != len(pl[k]) {
			return false
		}
		for j := range ql[k] {
			if oldOf[ql[k][j]] != newOf[pl[k][j]] {
				return false
			}
		}
	}
	return true
}

// policyCIDRs returns the prefixes cfg's policies name, as
// allocateIdentities collects them: each one is a CIDR identity.
func policyCIDRs(cfg *model.Config) map[netip.Prefix]bool {
	out := make(map[netip.Prefix]bool)
	add := func(p netip.Prefix) {
		if p = p.Masked(); p.Bits() != 0 {
			out[p] = true
		}
	}
	for _, p := range cfg.Policies {
		for _, list := range ruleLists(p) {
			for _, r := range list {
				for _, c := range r.CIDRs {
					add(c.CIDR)
					for _, ex := range c.Except {
						add(ex)
					}
				}
			}
		}
	}
	return out
}

// keepPrograms restricts res to the programs named in keep: their
// attachments and tail-call slots.
func keepPrograms(res *Result, keep map[string]bool) {
	res.Module.Programs = slices.DeleteFunc(res.Module.Programs, func(p *ir.Program) bool { return !keep[p.Name] })
	res.Attach = slices.DeleteFunc(res.Attach, func(a Attachment) bool { return !keep[a.Program] })
	for _, m := range res.Module.Maps {
		for i, prog := range m.Slots {
			if prog != "" && !keep[prog] {
				m.Slots[i] = ""
			}
		}
	}
}
