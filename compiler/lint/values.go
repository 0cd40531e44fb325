package lint

import (
	"regexp"

	"github.com/ebpfc/ebpfc/source"
)

// The front end rejects an except outside its cidr and a bad port range
// while it decodes, so a configuration with either never reaches the model
// checks. loadFindings gives those load errors the ids of the checks they
// are about; these patterns match the front end's messages (for CUE and
// for Kubernetes objects), and the tests hold them to it.
var (
	exceptOutsideRE = regexp.MustCompile(`except \S+ (is not inside|must be a strict subset of) cidr \S+`)
	badPortRangeRE  = regexp.MustCompile(`endPort \d+ is less than port \d+|endPort \d+ must be greater than or equal to port \d+|endPort needs a port to start the range|endPort cannot be used with the named port|endPort: may not be specified when port is`)
)

// loadFindings turns the front end's errors into error findings.
func loadFindings(errs source.Errors) []Finding {
	var out []Finding
	for _, e := range errs {
		id := "EBPFC000"
		switch {
		case exceptOutsideRE.MatchString(e.Msg):
			id = "EBPFC005"
		case badPortRangeRE.MatchString(e.Msg):
			id = "EBPFC006"
		}
		out = append(out, Finding{ID: id, Severity: Error, Pos: e.Pos, Message: e.Msg, Hint: checkByID(id).Help})
	}
	return Sort(out)
}

// checkExcepts reports except prefixes outside their cidr (EBPFC005) in a
// model that did not come through the front end, which rejects them.
func (l *linter) checkExcepts() error {
	for _, r := range l.rules() {
		for _, c := range r.rule.CIDRs {
			for _, ex := range c.Except {
				if !prefixWithin(ex, c.CIDR) {
					l.report("EBPFC005", c.Pos, "", nil, "%s: except %s is not inside cidr %s, so it excludes nothing", r, ex, c.CIDR)
				}
			}
		}
	}
	return nil
}

// checkPortRanges reports inverted or empty port ranges (EBPFC006) in a
// model that did not come through the front end, which rejects them.
func (l *linter) checkPortRanges() error {
	for _, r := range l.rules() {
		for _, pr := range r.rule.Ports {
			if pr.EndPort == 0 {
				continue
			}
			switch {
			case pr.Name != "":
				l.report("EBPFC006", pr.Pos, "", nil, "%s: endPort %d cannot be used with the named port %q", r, pr.EndPort, pr.Name)
			case pr.Port == 0:
				l.report("EBPFC006", pr.Pos, "", nil, "%s: endPort %d has no port to start the range", r, pr.EndPort)
			case pr.EndPort < pr.Port:
				l.report("EBPFC006", pr.Pos, "", nil, "%s: endPort %d is less than port %d, so the range is empty", r, pr.EndPort, pr.Port)
			}
		}
	}
	return nil
}
