package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/ebpfc/ebpfc/source"
)

// WriteText writes one finding per line as "file:line:col: severity:
// message [id]", each followed by its hint, indented.
func WriteText(w io.Writer, findings []Finding) error {
	for _, f := range findings {
		if _, err := fmt.Fprintf(w, "%s: %s: %s [%s]\n    hint: %s\n", f.Pos, f.Severity, f.Message, f.ID, f.Hint); err != nil {
			return err
		}
	}
	return nil
}

// Counts returns how many findings have each severity.
func Counts(findings []Finding) map[Severity]int {
	c := map[Severity]int{Error: 0, Warning: 0, Info: 0}
	for _, f := range findings {
		c[f.Severity]++
	}
	return c
}

// JSONReport is the document --format json writes. Field names are
// stable.
type JSONReport struct {
	Findings []JSONFinding `json:"findings"`
	Counts   JSONCounts    `json:"counts"`
}

// JSONCounts counts findings per severity.
type JSONCounts struct {
	Error   int `json:"error"`
	Warning int `json:"warning"`
	Info    int `json:"info"`
}

// JSONFinding is one finding. Line and column are 1-based; file is as the
// text output names it.
type JSONFinding struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	Severity Severity      `json:"severity"`
	File     string        `json:"file"`
	Line     int           `json:"line"`
	Column   int           `json:"column"`
	Message  string        `json:"message"`
	Hint     string        `json:"hint"`
	Related  []JSONRelated `json:"related,omitempty"`
}

// JSONRelated is another place a finding refers to.
type JSONRelated struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// WriteJSON writes findings as an indented JSONReport.
func WriteJSON(w io.Writer, findings []Finding) error {
	c := Counts(findings)
	doc := JSONReport{Findings: []JSONFinding{}, Counts: JSONCounts{Error: c[Error], Warning: c[Warning], Info: c[Info]}}
	for _, f := range findings {
		jf := JSONFinding{
			ID: f.ID, Name: checkByID(f.ID).Name, Severity: f.Severity,
			File: f.Pos.File, Line: f.Pos.Line, Column: f.Pos.Col,
			Message: f.Message, Hint: f.Hint,
		}
		for _, r := range f.Related {
			jf.Related = append(jf.Related, JSONRelated{File: r.Pos.File, Line: r.Pos.Line, Column: r.Pos.Col, Message: r.Message})
		}
		doc.Findings = append(doc.Findings, jf)
	}
	return writeIndented(w, doc)
}

func writeIndented(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// SARIF 2.1.0, the subset ebpfc writes. Field names and nesting follow the
// OASIS schema (sarif-schema-2.1.0.json).
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string            `json:"id"`
		Name                 string            `json:"name"`
		ShortDescription     sarifText         `json:"shortDescription"`
		Help                 sarifText         `json:"help"`
		HelpURI              string            `json:"helpUri"`
		DefaultConfiguration sarifRuleDefaults `json:"defaultConfiguration"`
	}
	sarifRuleDefaults struct {
		Level string `json:"level"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifResult struct {
		RuleID           string                 `json:"ruleId"`
		RuleIndex        int                    `json:"ruleIndex"`
		Level            string                 `json:"level"`
		Message          sarifText              `json:"message"`
		Locations        []sarifLocation        `json:"locations,omitempty"`
		RelatedLocations []sarifLocation        `json:"relatedLocations,omitempty"`
		Properties       map[string]interface{} `json:"properties,omitempty"`
	}
	sarifLocation struct {
		ID               *int                  `json:"id,omitempty"`
		PhysicalLocation sarifPhysicalLocation `json:"physicalLocation"`
		Message          *sarifText            `json:"message,omitempty"`
	}
	sarifPhysicalLocation struct {
		ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
		Region           *sarifRegion          `json:"region,omitempty"`
	}
	sarifArtifactLocation struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine   int `json:"startLine"`
		StartColumn int `json:"startColumn,omitempty"`
	}
)

// InformationURI is where SARIF viewers send people to learn about ebpfc;
// each rule's helpUri points into its documentation page.
const InformationURI = "https://github.com/ebpfc/ebpfc"

const sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"

// SARIFOptions say how WriteSARIF names the tool and the files.
type SARIFOptions struct {
	ToolVersion string
	// Root is the configuration directory; artifact URIs are relative to
	// it. Positions outside it keep their file name as is.
	Root string
}

// WriteSARIF writes findings as a SARIF 2.1.0 log with one run, whose
// driver lists every check as a rule.
func WriteSARIF(w io.Writer, findings []Finding, opts SARIFOptions) error {
	all := Checks()
	driver := sarifDriver{Name: "ebpfc", Version: opts.ToolVersion, InformationURI: InformationURI, Rules: []sarifRule{}}
	index := make(map[string]int)
	for i, c := range all {
		index[c.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: c.ID, Name: c.Name,
			ShortDescription:     sarifText{c.Summary},
			Help:                 sarifText{c.Help},
			HelpURI:              InformationURI + "/blob/main/docs/lint.md#" + strings.ToLower(c.ID),
			DefaultConfiguration: sarifRuleDefaults{sarifLevel(c.Severity)},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, Results: []sarifResult{}}
	for _, f := range findings {
		res := sarifResult{
			RuleID: f.ID, RuleIndex: index[f.ID], Level: sarifLevel(f.Severity),
			Message:    sarifText{f.Message},
			Properties: map[string]interface{}{"hint": f.Hint, "severity": string(f.Severity)},
		}
		if loc, ok := sarifPhysical(f.Pos, opts.Root); ok {
			res.Locations = []sarifLocation{{PhysicalLocation: loc}}
		}
		for i, r := range f.Related {
			if loc, ok := sarifPhysical(r.Pos, opts.Root); ok {
				id := i + 1
				res.RelatedLocations = append(res.RelatedLocations, sarifLocation{ID: &id, PhysicalLocation: loc, Message: &sarifText{r.Message}})
			}
		}
		run.Results = append(run.Results, res)
	}
	return writeIndented(w, sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}})
}

func sarifLevel(s Severity) string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

// sarifPhysical is the location of pos, its file relative to root as a URI
// reference.
func sarifPhysical(pos source.Pos, root string) (sarifPhysicalLocation, bool) {
	if pos.File == "" {
		return sarifPhysicalLocation{}, false
	}
	name := pos.File
	if root != "" {
		if rel, err := filepath.Rel(root, pos.File); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			name = rel
		}
	}
	loc := sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: (&url.URL{Path: filepath.ToSlash(name)}).String()}}
	if pos.Line > 0 {
		loc.Region = &sarifRegion{StartLine: pos.Line, StartColumn: max(pos.Col, 0)}
	}
	return loc, true
}
