package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/mailtrace/mailtrace/internal/duration"
)

// TestWindowInDaysDecodes: a window the API server accepts (7d, 1d12h, or
// metav1.Duration's 168h0m0s) decodes into the spec, so the manager can read
// every MessageTrace and schedule a mail admin wrote.
func TestWindowInDaysDecodes(t *testing.T) {
	const day = 24 * time.Hour
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{{"7d", 7 * day}, {"90d", 90 * day}, {"1d12h", 36 * time.Hour}, {"1.5d", 36 * time.Hour}, {"48h", 48 * time.Hour}, {"168h0m0s", 7 * day}} {
		var mt MessageTrace
		if err := yaml.Unmarshal([]byte("spec:\n  window: "+tt.in+"\n  senderAddresses: ['*@example.com']\n"), &mt); err != nil {
			t.Errorf("MessageTrace window %s: %v", tt.in, err)
		} else if mt.Spec.Window == nil || mt.Spec.Window.Duration != tt.want || len(mt.Spec.SenderAddresses) != 1 {
			t.Errorf("MessageTrace window %s: spec %+v, want window %v and the sender", tt.in, mt.Spec, tt.want)
		}
		var s MessageTraceSchedule
		if err := yaml.Unmarshal([]byte("spec:\n  schedule: '@daily'\n  window: "+tt.in+"\n"), &s); err != nil {
			t.Errorf("schedule window %s: %v", tt.in, err)
		} else if s.Spec.Window.Duration != tt.want || s.Spec.Schedule != "@daily" {
			t.Errorf("schedule window %s: spec %+v, want window %v", tt.in, s.Spec, tt.want)
		}
	}
	var mt MessageTrace
	if err := yaml.Unmarshal([]byte("spec:\n  window: abc\n"), &mt); err == nil || !strings.Contains(err.Error(), "7d") {
		t.Errorf("window abc: %v, want an error saying what a duration looks like", err)
	}
}

// TestWindowRoundTrips: what the Go client writes, it reads back; a spec
// without a window keeps none; null clears it; other fields keep their
// case-sensitive names.
func TestWindowRoundTrips(t *testing.T) {
	in := MessageTraceSpec{Window: &metav1.Duration{Duration: 36 * time.Hour}, MessageID: "<a@b>", ResultLimit: 7}
	b, err := json.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	var out MessageTraceSpec
	if err := json.Unmarshal(b, &out); err != nil || out.Window == nil || *out.Window != *in.Window || out.MessageID != in.MessageID || out.ResultLimit != 7 {
		t.Fatalf("round trip of %s: %+v, %v", b, out, err)
	}
	var none MessageTraceSpec
	if err := json.Unmarshal([]byte(`{"messageId":"<x@y>"}`), &none); err != nil || none.Window != nil || none.MessageID != "<x@y>" {
		t.Errorf("no window: %+v, %v", none, err)
	}
	if err := json.Unmarshal([]byte(`{"window":null}`), &out); err != nil || out.Window != nil {
		t.Errorf("window null: %+v, %v", out, err)
	}
	var wrongCase MessageTraceSpec
	if err := json.Unmarshal([]byte(`{"MessageID":"<x@y>"}`), &wrongCase); err != nil || wrongCase.MessageID != "" {
		t.Errorf("field names are case-sensitive, as the API machinery reads them: %+v, %v", wrongCase, err)
	}
}

// TestWindowRulesUseTheParsersGrammar: every window rule of the generated
// CRDs matches duration.Pattern, the grammar the Go decoder (and the CLIs'
// --since) reads; when one changes without the other, this fails.
func TestWindowRulesUseTheParsersGrammar(t *testing.T) {
	files, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs under config/crd/bases: %v", err)
	}
	want := "self.matches('" + duration.Pattern + "')"
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd map[string]any
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatal(err)
		}
		walkWindows(crd, func(prop map[string]any) {
			rules, _ := prop["x-kubernetes-validations"].([]any)
			ok := false
			for _, r := range rules {
				if rule, _ := r.(map[string]any)["rule"].(string); strings.Contains(rule, want) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: a window without a rule matching %s: %v", filepath.Base(f), want, rules)
			}
			found++
		})
	}
	if found < 2 {
		t.Errorf("found %d window properties, want the MessageTrace's and the schedule's at least", found)
	}
}

func walkWindows(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if props, ok := v["properties"].(map[string]any); ok {
			if w, ok := props["window"].(map[string]any); ok {
				fn(w)
			}
		}
		for _, x := range v {
			walkWindows(x, fn)
		}
	case []any:
		for _, x := range v {
			walkWindows(x, fn)
		}
	}
}
