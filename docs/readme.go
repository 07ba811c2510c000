package docs

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/mailtrace/mailtrace/internal/cli"
	"github.com/mailtrace/mailtrace/internal/democmd"
	"github.com/mailtrace/mailtrace/internal/plugin"
)

// ReadmeFile is README.md, relative to the repository root.
const ReadmeFile = "README.md"

// TroubleshootingFile is the page of every condition reason, relative to
// the repository root.
const TroubleshootingFile = "docs/troubleshooting.md"

// README holds two kinds of generated parts, so that it stays true to what
// the product prints:
//
//   - recorded outputs: the fenced block after a line
//     `<!-- output: NAME ... -->`, written from a real demo run by
//     `go run ./docs/readmegen` (outputs such as the demo's own, or
//     `kubectl get mt -o wide` in the demo cluster);
//   - tables: the lines between `<!-- generated: NAME ... -->` and
//     `<!-- end generated: NAME -->`, written by `make docs` (refgen) from
//     the API's reasons (docs/troubleshooting.md) and the command trees.
//
// docs/readme_test.go checks both against the code.

var fence = "```"

// OutputBlock returns the content of the recorded output NAME (without its
// fences).
func OutputBlock(readme []byte, name string) (string, error) {
	_, start, end, err := outputBlock(readme, name)
	if err != nil {
		return "", err
	}
	return string(readme[start:end]), nil
}

// ReplaceOutputBlock returns readme with the recorded output NAME replaced
// by content.
func ReplaceOutputBlock(readme []byte, name, content string) ([]byte, error) {
	_, start, end, err := outputBlock(readme, name)
	if err != nil {
		return nil, err
	}
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	return append(append(append([]byte(nil), readme[:start]...), content...), readme[end:]...), nil
}

// outputBlock finds the marker of NAME and the fenced block after it:
// start and end delimit the lines between the fences.
func outputBlock(readme []byte, name string) (marker, start, end int, err error) {
	m := "<!-- output: " + name + " "
	marker = bytes.Index(readme, []byte(m))
	if marker < 0 {
		return 0, 0, 0, fmt.Errorf("README has no %q marker", strings.TrimSpace(m))
	}
	if bytes.Contains(readme[marker+len(m):], []byte(m)) {
		return 0, 0, 0, fmt.Errorf("README has two %q markers", strings.TrimSpace(m))
	}
	open := bytes.Index(readme[marker:], []byte("\n"+fence))
	if open < 0 {
		return 0, 0, 0, fmt.Errorf("no fenced block after the %q marker", strings.TrimSpace(m))
	}
	open += marker + 1
	nl := bytes.IndexByte(readme[open:], '\n')
	if nl < 0 {
		return 0, 0, 0, fmt.Errorf("the block of %q does not end", name)
	}
	start = open + nl + 1
	if bytes.HasPrefix(readme[start:], []byte(fence+"\n")) {
		return marker, start, start, nil // an empty block
	}
	closing := bytes.Index(readme[start:], []byte("\n"+fence+"\n"))
	if closing < 0 {
		return 0, 0, 0, fmt.Errorf("the block of %q does not end", name)
	}
	return marker, start, start + closing + 1, nil
}

// GeneratedSection returns the lines between the markers of the generated
// section NAME.
func GeneratedSection(readme []byte, name string) (string, error) {
	start, end, err := generatedSection(readme, name)
	if err != nil {
		return "", err
	}
	return string(readme[start:end]), nil
}

// ReplaceGeneratedSection returns readme with the generated section NAME
// replaced by content.
func ReplaceGeneratedSection(readme []byte, name, content string) ([]byte, error) {
	start, end, err := generatedSection(readme, name)
	if err != nil {
		return nil, err
	}
	return append(append(append([]byte(nil), readme[:start]...), content...), readme[end:]...), nil
}

func generatedSection(readme []byte, name string) (start, end int, err error) {
	open := "<!-- generated: " + name + " "
	i := bytes.Index(readme, []byte(open))
	if i < 0 {
		return 0, 0, fmt.Errorf("README has no %q marker", strings.TrimSpace(open))
	}
	nl := bytes.IndexByte(readme[i:], '\n')
	if nl < 0 {
		return 0, 0, fmt.Errorf("the section %q does not end", name)
	}
	start = i + nl + 1
	closing := "<!-- end generated: " + name + " -->"
	j := bytes.Index(readme[start:], []byte(closing))
	if j < 0 {
		return 0, 0, fmt.Errorf("README has no %q marker", closing)
	}
	return start, start + j, nil
}

// ReasonTable is a section's reason table of docs/troubleshooting.md (the
// one below the heading `heading`) for README: reason, condition, what it
// means.
func ReasonTable(troubleshooting []byte, heading string) (string, error) {
	lines := strings.Split(string(troubleshooting), "\n")
	i := 0
	for ; i < len(lines) && lines[i] != heading; i++ {
	}
	if i == len(lines) {
		return "", fmt.Errorf("troubleshooting.md has no heading %q", heading)
	}
	var b strings.Builder
	b.WriteString("| reason | condition | what it means |\n|---|---|---|\n")
	rows := 0
	for i++; i < len(lines) && !strings.HasPrefix(lines[i], "#"); i++ {
		cells := tableCells(lines[i])
		if len(cells) < 3 || cells[0] == "reason" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", cells[0], cells[1], cells[2])
		rows++
	}
	if rows == 0 {
		return "", fmt.Errorf("troubleshooting.md has no reason table below %q", heading)
	}
	return b.String(), nil
}

// tableCells splits a Markdown table row into its cells (honouring \|).
func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	var cells []string
	var cur strings.Builder
	for i := 1; i < len(line)-1; i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line)-1 && line[i+1] == '|':
			cur.WriteString(`\|`)
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// CommandTable lists every runnable command of a cobra tree (`mailtrace`,
// `kubectl mailtrace`) with its arguments and its short help.
func CommandTable(root *cobra.Command) string {
	var b strings.Builder
	b.WriteString("| command | what |\n|---|---|\n")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() || s.Name() == "help" || s.Name() == "completion" {
				continue
			}
			if s.Runnable() {
				use := s.CommandPath()
				if _, args, ok := strings.Cut(s.Use, " "); ok {
					use += " " + args
				}
				short := s.Short
				if len(s.Aliases) > 0 {
					short += " (also `" + strings.Join(s.Aliases, "`, `") + "`)"
				}
				fmt.Fprintf(&b, "| `%s` | %s |\n", strings.ReplaceAll(use, "|", `\|`), strings.ReplaceAll(short, "|", `\|`))
			}
			walk(s)
		}
	}
	walk(root)
	return b.String()
}

// The generated sections of README and where they come from.
var readmeReasonSections = map[string]string{
	"reasons-messagetrace": "## MessageTrace",
	"reasons-reports":      "### Reports (`spec.report`, `status.report`)",
}

// ReadmeTables returns the content of every generated section of README:
// the reason tables (from docs/troubleshooting.md, whose rows a test keeps
// in step with the API's Reason constants) and the command tables (from
// the cobra trees of mailtrace and kubectl-mailtrace).
func ReadmeTables(troubleshooting []byte) (map[string]string, error) {
	out := map[string]string{
		"commands-mailtrace": CommandTable(cli.NewRootCommand(democmd.NewCommand())),
		"commands-kubectl":   CommandTable(plugin.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard})),
	}
	for name, heading := range readmeReasonSections {
		t, err := ReasonTable(troubleshooting, heading)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// GenerateReadmeTables returns readme with every generated section
// rewritten (see ReadmeTables).
func GenerateReadmeTables(readme, troubleshooting []byte) ([]byte, error) {
	tables, err := ReadmeTables(troubleshooting)
	if err != nil {
		return nil, err
	}
	for name, content := range tables {
		if readme, err = ReplaceGeneratedSection(readme, name, content); err != nil {
			return nil, err
		}
	}
	return readme, nil
}
