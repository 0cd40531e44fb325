package load

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// decoder turns a CUE value that satisfies the schema into a model.Config.
// The schema has already checked kinds and ranges, so the decoder reports
// only what the schema cannot say (prefixes with host bits set, port ranges,
// named versus numbered ports); it still checks every kind it reads rather
// than trust the schema, so a schema bug becomes an error, never a panic.
type decoder struct {
	index *posIndex
	errs  source.Errors
}

// field is one regular field of a struct, in name order.
type field struct {
	name  string
	value cue.Value
}

func (d *decoder) fields(v cue.Value, path []string) []field {
	v = d.defaulted(v)
	if !v.Exists() {
		return nil
	}
	it, err := v.Fields()
	if err != nil {
		d.errorf(v, path, "want a struct")
		return nil
	}
	var out []field
	for it.Next() {
		sel := it.Selector()
		if sel.LabelType() != cue.StringLabel {
			continue
		}
		out = append(out, field{name: sel.Unquoted(), value: it.Value()})
	}
	slices.SortFunc(out, func(a, b field) int { return cmp.Compare(a.name, b.name) })
	return out
}

// lookup returns the regular field name of v, if it is present. Optional
// fields of the schema that were not written are not regular fields.
func (d *decoder) lookup(v cue.Value, name string) (cue.Value, bool) {
	v = d.defaulted(v)
	if !v.Exists() {
		return cue.Value{}, false
	}
	it, err := v.Fields()
	if err != nil {
		return cue.Value{}, false
	}
	for it.Next() {
		if it.Selector().LabelType() == cue.StringLabel && it.Selector().Unquoted() == name {
			return it.Value(), true
		}
	}
	return cue.Value{}, false
}

func (d *decoder) list(v cue.Value, path []string) []cue.Value {
	v = d.defaulted(v)
	if !v.Exists() {
		return nil
	}
	it, err := v.List()
	if err != nil {
		d.errorf(v, path, "want a list")
		return nil
	}
	var out []cue.Value
	for it.Next() {
		out = append(out, it.Value())
	}
	return out
}

func (d *decoder) defaulted(v cue.Value) cue.Value {
	if dv, ok := v.Default(); ok {
		return dv
	}
	return v
}

func (d *decoder) str(v cue.Value, path []string) string {
	s, err := d.defaulted(v).String()
	if err != nil {
		d.errorf(v, path, "want a string")
	}
	return s
}

func (d *decoder) integer(v cue.Value, path []string, lo, hi int64) int64 {
	n, err := d.defaulted(v).Int64()
	if err != nil {
		d.errorf(v, path, "want an integer")
		return 0
	}
	if n < lo || n > hi {
		d.errorf(v, path, "%d is out of range [%d, %d]", n, lo, hi)
		return 0
	}
	return n
}

func (d *decoder) boolean(v cue.Value, path []string) bool {
	b, err := d.defaulted(v).Bool()
	if err != nil {
		d.errorf(v, path, "want a bool")
	}
	return b
}

func (d *decoder) strings(v cue.Value, path []string) []string {
	var out []string
	for i, e := range d.list(v, path) {
		out = append(out, d.str(e, at(path, i)))
	}
	return out
}

func (d *decoder) stringMap(v cue.Value, path []string) map[string]string {
	out := map[string]string{}
	for _, f := range d.fields(v, path) {
		out[f.name] = d.str(f.value, at(path, f.name))
	}
	return out
}

func (d *decoder) addr(v cue.Value, path []string) netip.Addr {
	s := d.str(v, path)
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.errorf(v, path, "invalid IP address %q", s)
	}
	return a
}

func (d *decoder) addrs(v cue.Value, path []string) []netip.Addr {
	var out []netip.Addr
	for i, e := range d.list(v, path) {
		out = append(out, d.addr(e, at(path, i)))
	}
	return out
}

func (d *decoder) prefix(v cue.Value, path []string) netip.Prefix {
	s := d.str(v, path)
	p, msg := parsePrefix(s)
	if msg != "" {
		d.errorf(v, path, "%s", msg)
	}
	return p
}

func (d *decoder) prefixes(v cue.Value, path []string) []netip.Prefix {
	var out []netip.Prefix
	for i, e := range d.list(v, path) {
		out = append(out, d.prefix(e, at(path, i)))
	}
	return out
}

// parsePrefix parses a CIDR and insists that its host bits are zero, since
// "10.0.0.1/8" is more often a typo than a way of writing 10.0.0.0/8.
//
// A prefix of IPv4-mapped IPv6 addresses (::ffff:a.b.c.d/n, n >= 96) means
// the IPv4 prefix a.b.c.d/(n-96): the datapath sees IPv4 packets as IPv4,
// and keys IPv4 prefixes in the ipcache by their mapped form, so the two
// spellings must be one prefix (otherwise ::ffff:0:0/96 and 0.0.0.0/0 would
// be two ipcache entries with one key).
func parsePrefix(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Sprintf("invalid CIDR %q", s)
	}
	if m := p.Masked(); m != p {
		return m, fmt.Sprintf("CIDR %s has host bits set; did you mean %s?", s, m)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, ""
}

// at extends a path by a field name or a list index.
func at(path []string, elem any) []string {
	var s string
	switch e := elem.(type) {
	case int:
		s = strconv.Itoa(e)
	case string:
		s = e
	}
	return append(slices.Clip(path), s)
}

// pos is where the value at path was written: its label when label is set
// and the path was written as a field, else its value.
func (d *decoder) pos(v cue.Value, path []string, label bool) source.Pos {
	key := pathKey(path...)
	if label {
		if p, ok := d.index.label[key]; ok {
			return sourcePos(p, "")
		}
	}
	if p, ok := d.index.value[key]; ok {
		return sourcePos(p, "")
	}
	if p := v.Pos(); p.IsValid() && d.index.files[p.Filename()] {
		return sourcePos(p, "")
	}
	if p, ok := d.index.find(path, label); ok {
		return sourcePos(p, "")
	}
	return d.index.firstFile()
}

func (d *decoder) errorf(v cue.Value, path []string, format string, args ...any) {
	d.errs.Add(d.pos(v, path, false), pathString(path)+": "+format, args...)
}

func (d *decoder) config(v cue.Value) *model.Config {
	cfg := &model.Config{}
	if c, ok := d.lookup(v, "cluster"); ok {
		path := []string{"cluster"}
		cfg.Cluster = model.Cluster{Pos: d.pos(c, path, true)}
		if n, ok := d.lookup(c, "name"); ok {
			cfg.Cluster.Name = d.str(n, at(path, "name"))
		}
		if x, ok := d.lookup(c, "podCIDRs"); ok {
			cfg.Cluster.PodCIDRs = d.prefixes(x, at(path, "podCIDRs"))
		}
		if x, ok := d.lookup(c, "serviceCIDRs"); ok {
			cfg.Cluster.ServiceCIDRs = d.prefixes(x, at(path, "serviceCIDRs"))
		}
		if x, ok := d.lookup(c, "apiServer"); ok {
			cfg.Cluster.APIServer = d.addrs(x, at(path, "apiServer"))
		}
	}
	if x, ok := d.lookup(v, "nodes"); ok {
		for _, f := range d.fields(x, []string{"nodes"}) {
			cfg.Nodes = append(cfg.Nodes, d.node(f.name, f.value, []string{"nodes", f.name}))
		}
	}
	if x, ok := d.lookup(v, "namespaces"); ok {
		for _, f := range d.fields(x, []string{"namespaces"}) {
			path := []string{"namespaces", f.name}
			ns := &model.Namespace{Name: f.name, Pos: d.pos(f.value, path, true)}
			if l, ok := d.lookup(f.value, "labels"); ok {
				ns.Labels = d.stringMap(l, at(path, "labels"))
			}
			cfg.Namespaces = append(cfg.Namespaces, ns)
		}
	}
	d.namespaced(v, "endpoints", func(ns, name string, x cue.Value, path []string) {
		cfg.Endpoints = append(cfg.Endpoints, d.endpoint(ns, name, x, path))
	})
	d.namespaced(v, "policies", func(ns, name string, x cue.Value, path []string) {
		cfg.Policies = append(cfg.Policies, d.policy(ns, name, x, path))
	})
	if x, ok := d.lookup(v, "clusterPolicies"); ok {
		for _, f := range d.fields(x, []string{"clusterPolicies"}) {
			cfg.Policies = append(cfg.Policies, d.policy("", f.name, f.value, []string{"clusterPolicies", f.name}))
		}
	}
	d.namespaced(v, "services", func(ns, name string, x cue.Value, path []string) {
		cfg.Services = append(cfg.Services, d.service(ns, name, x, path))
	})
	if x, ok := d.lookup(v, "nat"); ok {
		cfg.NAT = d.nat(x, []string{"nat"})
	}
	if x, ok := d.lookup(v, "settings"); ok {
		cfg.Settings = d.settings(x, []string{"settings"})
	}
	if x, ok := d.lookup(v, "tests"); ok {
		for _, f := range d.fields(x, []string{"tests"}) {
			cfg.Tests = append(cfg.Tests, d.test(f.name, f.value, []string{"tests", f.name}))
		}
	}
	return cfg
}

// namespaced walks a section keyed by namespace and then by name.
func (d *decoder) namespaced(v cue.Value, section string, each func(ns, name string, x cue.Value, path []string)) {
	x, ok := d.lookup(v, section)
	if !ok {
		return
	}
	for _, nsf := range d.fields(x, []string{section}) {
		for _, f := range d.fields(nsf.value, []string{section, nsf.name}) {
			each(nsf.name, f.name, f.value, []string{section, nsf.name, f.name})
		}
	}
}

func (d *decoder) node(name string, v cue.Value, path []string) *model.Node {
	n := &model.Node{Name: name, Labels: map[string]string{}, Features: map[string]bool{}, Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		p := at(path, f.name)
		switch f.name {
		case "addresses":
			n.Addresses = d.addrs(f.value, p)
		case "zone":
			n.Zone = d.str(f.value, p)
		case "labels":
			n.Labels = d.stringMap(f.value, p)
		case "devices":
			n.Devices = d.strings(f.value, p)
		case "features":
			for _, g := range d.fields(f.value, p) {
				n.Features[g.name] = d.boolean(g.value, at(p, g.name))
			}
		default:
			d.unknown(f, p)
		}
	}
	return n
}

// unknown reports a field the decoder does not know; the schema should have
// rejected it, so this is a schema and decoder mismatch surfaced to the user
// rather than a silently ignored field.
func (d *decoder) unknown(f field, path []string) {
	d.errorf(f.value, path, "field %q is not supported", f.name)
}

func (d *decoder) endpoint(ns, name string, v cue.Value, path []string) *model.Endpoint {
	e := &model.Endpoint{Namespace: ns, Name: name, Labels: map[string]string{}, Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		p := at(path, f.name)
		switch f.name {
		case "node":
			e.Node = d.str(f.value, p)
		case "interface":
			e.Interface = d.str(f.value, p)
		case "addresses":
			e.Addresses = d.addrs(f.value, p)
		case "labels":
			e.Labels = d.stringMap(f.value, p)
		case "namedPorts":
			for _, g := range d.fields(f.value, p) {
				gp := at(p, g.name)
				np := model.NamedPort{Name: g.name, Pos: d.pos(g.value, gp, true)}
				if x, ok := d.lookup(g.value, "port"); ok {
					np.Port = uint16(d.integer(x, at(gp, "port"), 1, 65535))
				}
				if x, ok := d.lookup(g.value, "protocol"); ok {
					np.Protocol = model.Protocol(d.str(x, at(gp, "protocol")))
				}
				e.NamedPorts = append(e.NamedPorts, np)
			}
		case "hostPorts":
			for i, x := range d.list(f.value, p) {
				e.HostPorts = append(e.HostPorts, d.hostPort(x, at(p, i)))
			}
		default:
			d.unknown(f, p)
		}
	}
	return e
}

func (d *decoder) hostPort(v cue.Value, path []string) model.HostPort {
	hp := model.HostPort{Pos: d.pos(v, path, false)}
	for _, f := range d.fields(v, path) {
		p := at(path, f.name)
		switch f.name {
		case "hostPort":
			hp.HostPort = uint16(d.integer(f.value, p, 1, 65535))
		case "containerPort":
			hp.ContainerPort = uint16(d.integer(f.value, p, 1, 65535))
		case "protocol":
			hp.Protocol = model.Protocol(d.str(f.value, p))
		case "hostIP":
			hp.HostIP = d.addr(f.value, p)
		default:
			d.unknown(f, p)
		}
	}
	return hp
}

func (d *decoder) policy(ns, name string, v cue.Value, path []string) *model.Policy {
	p := &model.Policy{Namespace: ns, Name: name, ClusterWide: ns == "", Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "description":
			p.Description = d.str(f.value, fp)
		case "endpointSelector":
			p.EndpointSelector = d.selector(f.value, fp, true)
		case "nodeSelector":
			p.NodeSelector = d.selector(f.value, fp, false)
		case "ingress":
			p.Ingress = d.rules(f.value, fp, "from")
		case "ingressDeny":
			p.IngressDeny = d.rules(f.value, fp, "from")
		case "egress":
			p.Egress = d.rules(f.value, fp, "to")
		case "egressDeny":
			p.EgressDeny = d.rules(f.value, fp, "to")
		case "audit":
			p.Audit = d.boolean(f.value, fp)
		default:
			d.unknown(f, fp)
		}
	}
	return p
}

// Cilium spells a namespace restriction as a label of the endpoint.
const (
	ciliumNamespaceLabel = "io.kubernetes.pod.namespace"
	namespaceNameLabel   = "kubernetes.io/metadata.name"
)

// selector decodes a label selector. With endpoints set it also accepts a
// namespaceSelector and turns Cilium's namespace label into one. Cilium's
// source prefixes "k8s:" and "any:" on keys are dropped: every label here
// comes from Kubernetes.
func (d *decoder) selector(v cue.Value, path []string, endpoints bool) *model.Selector {
	s := &model.Selector{Pos: d.pos(v, path, false)}
	var nsLabels map[string]string
	var nsExprs []model.Expression
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "matchLabels":
			for _, g := range d.fields(f.value, fp) {
				key := labelKey(g.name)
				val := d.str(g.value, at(fp, g.name))
				if endpoints && key == ciliumNamespaceLabel {
					if nsLabels == nil {
						nsLabels = map[string]string{}
					}
					nsLabels[namespaceNameLabel] = val
					continue
				}
				if s.MatchLabels == nil {
					s.MatchLabels = map[string]string{}
				}
				s.MatchLabels[key] = val
			}
		case "matchExpressions":
			for i, x := range d.list(f.value, fp) {
				e := d.expression(x, at(fp, i))
				if endpoints && e.Key == ciliumNamespaceLabel {
					e.Key = namespaceNameLabel
					nsExprs = append(nsExprs, e)
					continue
				}
				s.MatchExpressions = append(s.MatchExpressions, e)
			}
		case "namespaceSelector":
			if endpoints {
				s.Namespaces = d.selector(f.value, fp, false)
			} else {
				d.unknown(f, fp)
			}
		default:
			d.unknown(f, fp)
		}
	}
	if nsLabels != nil || nsExprs != nil {
		if s.Namespaces == nil {
			s.Namespaces = &model.Selector{Pos: s.Pos}
		}
		for k, val := range nsLabels {
			if old, ok := s.Namespaces.MatchLabels[k]; ok && old != val {
				d.errorf(v, path, "namespace restricted to both %q and %q; the selector matches nothing", old, val)
			}
			if s.Namespaces.MatchLabels == nil {
				s.Namespaces.MatchLabels = map[string]string{}
			}
			s.Namespaces.MatchLabels[k] = val
		}
		s.Namespaces.MatchExpressions = append(s.Namespaces.MatchExpressions, nsExprs...)
	}
	return s
}

func labelKey(k string) string {
	for _, prefix := range []string{"k8s:", "any:"} {
		if after, ok := strings.CutPrefix(k, prefix); ok {
			return after
		}
	}
	return k
}

func (d *decoder) expression(v cue.Value, path []string) model.Expression {
	e := model.Expression{Pos: d.pos(v, path, false)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "key":
			e.Key = labelKey(d.str(f.value, fp))
		case "operator":
			e.Operator = model.Operator(d.str(f.value, fp))
		case "values":
			e.Values = d.strings(f.value, fp)
		default:
			d.unknown(f, fp)
		}
	}
	switch e.Operator {
	case model.OpIn, model.OpNotIn:
		if len(e.Values) == 0 {
			d.errorf(v, path, "operator %s needs at least one value", e.Operator)
		}
	case model.OpExists, model.OpDoesNotExist:
		if len(e.Values) > 0 {
			d.errorf(v, path, "operator %s takes no values", e.Operator)
		}
	}
	return e
}

// rules decodes ingress (dir "from") or egress (dir "to") rules.
func (d *decoder) rules(v cue.Value, path []string, dir string) []*model.Rule {
	var out []*model.Rule
	for i, x := range d.list(v, path) {
		out = append(out, d.rule(x, at(path, i), dir))
	}
	return out
}

func (d *decoder) rule(v cue.Value, path []string, dir string) *model.Rule {
	r := &model.Rule{Pos: d.pos(v, path, false)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case dir + "Endpoints":
			r.HasPeers = true
			r.Endpoints = []*model.Selector{}
			for i, x := range d.list(f.value, fp) {
				r.Endpoints = append(r.Endpoints, d.selector(x, at(fp, i), true))
			}
		case dir + "CIDR":
			r.HasPeers = true
			for i, x := range d.list(f.value, fp) {
				xp := at(fp, i)
				r.CIDRs = append(r.CIDRs, &model.CIDRPeer{CIDR: d.prefix(x, xp), Pos: d.pos(x, xp, false)})
			}
		case dir + "CIDRSet":
			r.HasPeers = true
			for i, x := range d.list(f.value, fp) {
				r.CIDRs = append(r.CIDRs, d.cidrSet(x, at(fp, i)))
			}
		case dir + "Entities":
			r.HasPeers = true
			for i, x := range d.list(f.value, fp) {
				xp := at(fp, i)
				r.Entities = append(r.Entities, model.EntityPeer{Entity: model.Entity(d.str(x, xp)), Pos: d.pos(x, xp, false)})
			}
		case "toPorts":
			for i, x := range d.list(f.value, fp) {
				xp := at(fp, i)
				ports, _ := d.lookup(x, "ports")
				for j, y := range d.list(ports, at(xp, "ports")) {
					r.Ports = append(r.Ports, d.portRule(y, at(at(xp, "ports"), j)))
				}
			}
		case "icmps":
			for i, x := range d.list(f.value, fp) {
				xp := at(fp, i)
				fields, _ := d.lookup(x, "fields")
				for j, y := range d.list(fields, at(xp, "fields")) {
					r.ICMPs = append(r.ICMPs, d.icmp(y, at(at(xp, "fields"), j)))
				}
			}
		default:
			d.unknown(f, fp)
		}
	}
	return r
}

func (d *decoder) cidrSet(v cue.Value, path []string) *model.CIDRPeer {
	c := &model.CIDRPeer{Pos: d.pos(v, path, false)}
	if x, ok := d.lookup(v, "cidr"); ok {
		c.CIDR = d.prefix(x, at(path, "cidr"))
	}
	if x, ok := d.lookup(v, "except"); ok {
		ep := at(path, "except")
		for i, y := range d.list(x, ep) {
			yp := at(ep, i)
			e := d.prefix(y, yp)
			if c.CIDR.IsValid() && e.IsValid() && !prefixContains(c.CIDR, e) {
				d.errorf(y, yp, "except %s is not inside cidr %s", e, c.CIDR)
			}
			c.Except = append(c.Except, e)
		}
	}
	return c
}

// prefixContains reports whether inner lies inside outer.
func prefixContains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

func (d *decoder) portRule(v cue.Value, path []string) *model.PortRule {
	pr := &model.PortRule{Protocol: model.ProtoAny, Pos: d.pos(v, path, false)}
	var endPort cue.Value
	hasEnd := false
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "port":
			x := d.defaulted(f.value)
			if x.Kind() == cue.StringKind {
				s := d.str(x, fp)
				if n, err := strconv.Atoi(s); err == nil {
					if n < 0 || n > 65535 {
						d.errorf(x, fp, "port %d is out of range [0, 65535]", n)
					} else {
						pr.Port = uint16(n)
					}
				} else if !isPortName(s) {
					d.errorf(x, fp, "invalid port name %q: want lower-case letters, digits and '-', with at least one letter", s)
				} else {
					pr.Name = s
				}
			} else {
				pr.Port = uint16(d.integer(x, fp, 0, 65535))
			}
		case "endPort":
			endPort, hasEnd = f.value, true
			pr.EndPort = uint16(d.integer(f.value, fp, 1, 65535))
		case "protocol":
			pr.Protocol = model.Protocol(d.str(f.value, fp))
		default:
			d.unknown(f, fp)
		}
	}
	if hasEnd {
		ep := at(path, "endPort")
		switch {
		case pr.Name != "":
			d.errorf(endPort, ep, "endPort cannot be used with the named port %q", pr.Name)
		case pr.Port == 0:
			d.errorf(endPort, ep, "endPort needs a port to start the range")
		case pr.EndPort != 0 && pr.EndPort < pr.Port:
			d.errorf(endPort, ep, "endPort %d is less than port %d", pr.EndPort, pr.Port)
		}
	}
	return pr
}

func (d *decoder) icmp(v cue.Value, path []string) *model.ICMPRule {
	r := &model.ICMPRule{Family: "IPv4", Pos: d.pos(v, path, false)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "type":
			r.Type = uint8(d.integer(f.value, fp, 0, 255))
		case "code":
			c := uint8(d.integer(f.value, fp, 0, 255))
			r.Code = &c
		case "family":
			r.Family = d.str(f.value, fp)
		default:
			d.unknown(f, fp)
		}
	}
	return r
}

func (d *decoder) service(ns, name string, v cue.Value, path []string) *model.Service {
	s := &model.Service{Namespace: ns, Name: name, Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "type":
			s.Type = d.str(f.value, fp)
		case "clusterIPs":
			s.ClusterIPs = d.addrs(f.value, fp)
		case "externalIPs":
			s.ExternalIPs = d.addrs(f.value, fp)
		case "loadBalancerIPs":
			s.LoadBalancerIPs = d.addrs(f.value, fp)
		case "ports":
			for i, x := range d.list(f.value, fp) {
				s.Ports = append(s.Ports, d.servicePort(x, at(fp, i)))
			}
		case "backends":
			for i, x := range d.list(f.value, fp) {
				s.Backends = append(s.Backends, d.backend(x, at(fp, i)))
			}
		case "selector":
			s.Selector = &model.Selector{MatchLabels: d.stringMap(f.value, fp), Pos: d.pos(f.value, fp, false)}
		case "sessionAffinity":
			s.SessionAffinity = d.str(f.value, fp)
		case "sessionAffinityTimeout":
			s.SessionAffinityTimeout = int(d.integer(f.value, fp, 1, 86400))
		case "externalTrafficPolicy":
			s.ExternalTrafficPolicy = d.str(f.value, fp)
		case "internalTrafficPolicy":
			s.InternalTrafficPolicy = d.str(f.value, fp)
		case "topologyAware":
			s.TopologyAware = d.boolean(f.value, fp)
		case "loadBalancerSourceRanges":
			s.LoadBalancerSourceRanges = d.prefixes(f.value, fp)
		case "algorithm":
			s.Algorithm = d.str(f.value, fp)
		case "forwardingMode":
			s.ForwardingMode = d.str(f.value, fp)
		default:
			d.unknown(f, fp)
		}
	}
	return s
}

func (d *decoder) servicePort(v cue.Value, path []string) *model.ServicePort {
	sp := &model.ServicePort{Protocol: model.ProtoTCP, Pos: d.pos(v, path, false)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "name":
			sp.Name = d.str(f.value, fp)
		case "port":
			sp.Port = uint16(d.integer(f.value, fp, 1, 65535))
		case "protocol":
			sp.Protocol = model.Protocol(d.str(f.value, fp))
		case "targetPort":
			x := d.defaulted(f.value)
			if x.Kind() == cue.StringKind {
				s := d.str(x, fp)
				if !isPortName(s) {
					d.errorf(x, fp, "invalid port name %q: want lower-case letters, digits and '-', with at least one letter", s)
				}
				sp.TargetName = s
			} else {
				sp.TargetPort = uint16(d.integer(x, fp, 1, 65535))
			}
		case "nodePort":
			sp.NodePort = uint16(d.integer(f.value, fp, 1, 65535))
		default:
			d.unknown(f, fp)
		}
	}
	if sp.TargetPort == 0 && sp.TargetName == "" {
		sp.TargetPort = sp.Port
	}
	return sp
}

func (d *decoder) backend(v cue.Value, path []string) *model.Backend {
	b := &model.Backend{Weight: 1, State: "active", Pos: d.pos(v, path, false)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "address":
			b.Address = d.addr(f.value, fp)
		case "port":
			b.Port = uint16(d.integer(f.value, fp, 1, 65535))
		case "weight":
			b.Weight = uint16(d.integer(f.value, fp, 0, 65535))
		case "node":
			b.Node = d.str(f.value, fp)
		case "zone":
			b.Zone = d.str(f.value, fp)
		case "state":
			b.State = d.str(f.value, fp)
		default:
			d.unknown(f, fp)
		}
	}
	return b
}

func (d *decoder) nat(v cue.Value, path []string) *model.NAT {
	n := &model.NAT{Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "masquerade":
			m := &model.Masquerade{Pos: d.pos(f.value, fp, true)}
			for _, g := range d.fields(f.value, fp) {
				gp := at(fp, g.name)
				switch g.name {
				case "enabled":
					m.Enabled = d.boolean(g.value, gp)
				case "devices":
					m.Devices = d.strings(g.value, gp)
				case "nonMasqueradeCIDRs":
					m.NonMasqueradeCIDRs = d.prefixes(g.value, gp)
				default:
					d.unknown(g, gp)
				}
			}
			n.Masquerade = m
		case "egressGateways":
			for _, g := range d.fields(f.value, fp) {
				n.EgressGateways = append(n.EgressGateways, d.egressGateway(g.name, g.value, at(fp, g.name)))
			}
		case "portRange":
			if x, ok := d.lookup(f.value, "min"); ok {
				n.PortMin = uint16(d.integer(x, at(fp, "min"), 1, 65535))
			}
			if x, ok := d.lookup(f.value, "max"); ok {
				n.PortMax = uint16(d.integer(x, at(fp, "max"), 1, 65535))
			}
			if n.PortMin > n.PortMax {
				d.errorf(f.value, fp, "port range min %d is greater than max %d", n.PortMin, n.PortMax)
			}
		default:
			d.unknown(f, fp)
		}
	}
	return n
}

func (d *decoder) egressGateway(name string, v cue.Value, path []string) *model.EgressGateway {
	g := &model.EgressGateway{Name: name, Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "selector":
			g.Selector = d.selector(f.value, fp, true)
		case "destinations":
			g.Destinations = d.prefixes(f.value, fp)
		case "excluded":
			g.Excluded = d.prefixes(f.value, fp)
		case "gatewayNode":
			g.GatewayNode = d.str(f.value, fp)
		case "egressIP":
			g.EgressIP = d.addr(f.value, fp)
		default:
			d.unknown(f, fp)
		}
	}
	return g
}

func (d *decoder) settings(v cue.Value, path []string) model.Settings {
	s := model.Settings{
		Enforcement:   model.EnforceDefault,
		VerdictEvents: "all",
		MapSizes:      map[string]uint32{},
		CTTimeouts:    map[string]int{},
		FieldPos:      map[string]source.Pos{},
		Pos:           d.pos(v, path, true),
	}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		s.FieldPos[f.name] = d.pos(f.value, fp, true)
		switch f.name {
		case "enforcement":
			s.Enforcement = model.Enforcement(d.str(f.value, fp))
		case "audit":
			s.Audit = d.boolean(f.value, fp)
		case "verdictEvents":
			s.VerdictEvents = d.str(f.value, fp)
		case "mapSizes":
			for _, g := range d.fields(f.value, fp) {
				s.MapSizes[g.name] = uint32(d.integer(g.value, at(fp, g.name), 1, 1<<24))
				s.FieldPos["mapSizes."+g.name] = d.pos(g.value, at(fp, g.name), true)
			}
		case "mapSizeRatio":
			r, err := d.defaulted(f.value).Float64()
			if err != nil || r <= 0 || r > 1 {
				d.errorf(f.value, fp, "want a number in (0, 1]")
			}
			s.MapSizeRatio = r
		case "conntrackTimeouts":
			for _, g := range d.fields(f.value, fp) {
				s.CTTimeouts[g.name] = int(d.integer(g.value, at(fp, g.name), 1, 1<<31-1))
			}
		default:
			d.unknown(f, fp)
		}
	}
	return s
}

func (d *decoder) test(name string, v cue.Value, path []string) *model.Test {
	t := &model.Test{Name: name, Protocol: model.ProtoTCP, Pos: d.pos(v, path, true)}
	for _, f := range d.fields(v, path) {
		fp := at(path, f.name)
		switch f.name {
		case "from":
			t.From = d.str(f.value, fp)
		case "to":
			t.To = d.str(f.value, fp)
		case "protocol":
			t.Protocol = model.Protocol(d.str(f.value, fp))
		case "port":
			t.Port = uint16(d.integer(f.value, fp, 1, 65535))
		case "family":
			t.Family, t.FamilyPos = d.str(f.value, fp), d.pos(f.value, fp, true)
		case "expect":
			x := d.defaulted(f.value)
			if x.Kind() == cue.ListKind {
				// A list of backends: the connection is allowed and lands
				// on one of them.
				t.Expect = "allow"
				t.Backends = d.strings(x, fp)
				slices.Sort(t.Backends)
			} else {
				t.Expect = d.str(x, fp)
			}
		default:
			d.unknown(f, fp)
		}
	}
	return t
}
