// Package crd checks the MessageTrace CRD's validation against a real
// kube-apiserver: every rule rejects the objects it is meant to reject, with
// its message, and lets good objects through.
package crd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/duration"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m, nil) }

func newTrace(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "MessageTrace",
		"metadata":   map[string]any{"name": name, "namespace": ns},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

func addresses(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%d@example.com", i)
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestValidObjectsAreAccepted(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	cases := []struct {
		name string
		spec map[string]any
	}{
		{"no spec", nil},
		{"empty spec", map[string]any{}},
		{"window", map[string]any{"window": "168h"}},
		{"window in minutes", map[string]any{"window": "90m"}},
		{"window of exactly 90 days", map[string]any{"window": "2160h"}},
		{"window in days", map[string]any{"window": "7d"}},
		{"window of 90 days in days", map[string]any{"window": "90d"}},
		{"window in days and hours", map[string]any{"window": "1d12h"}},
		{"window in half days", map[string]any{"window": "1.5d"}},
		{"window as the Go client writes it", map[string]any{"window": "168h0m0s"}},
		{"start and end", map[string]any{"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-03T00:00:00Z"}},
		{"start and end exactly 90 days apart", map[string]any{"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-04-01T00:00:00Z"}},
		{"start only", map[string]any{"startTime": "2026-01-01T00:00:00Z"}},
		{"wildcards", map[string]any{"senderAddresses": []any{"*", "*@example.com", "user@*", "*@*.example.com", "a*b@c*d"}}},
		{"100 addresses", map[string]any{"senderAddresses": addresses(100), "recipientAddresses": addresses(100)}},
		{"IPv6 and CIDRs", map[string]any{"originalClientIP": "2001:db8::1", "fromIP": "203.0.113.0/24", "toIP": "2001:db8::/32"}},
		{"limits", map[string]any{"resultLimit": int64(1)}},
		{"limit 1000", map[string]any{"resultLimit": int64(1000)}},
		{"every filter", map[string]any{
			"senderAddresses":    []any{"*@example.com"},
			"recipientAddresses": []any{"bob@example.org", "*@example.net"},
			"startTime":          "2026-01-01T00:00:00Z",
			"endTime":            "2026-01-08T00:00:00Z",
			"deliveryStatuses":   []any{"Delivered", "Pending", "Expanded", "Failed", "Quarantined", "FilteredAsSpam", "GettingStatus"},
			"messageId":          "<abc@example.com>",
			"messageTraceId":     "0123456789abcdef",
			"direction":          "Outbound",
			"originalClientIP":   "198.51.100.7",
			"fromIP":             "198.51.100.0/24",
			"toIP":               "203.0.113.25",
			"subject":            map[string]any{"value": "invoice", "match": "StartsWith"},
			"resultLimit":        int64(200),
		}},
		{"details of every recipient", map[string]any{"details": map[string]any{"messageTraceId": "m1"}}},
		{"details with an event filter", map[string]any{"details": map[string]any{"messageTraceId": "m1", "recipient": "a@example.com", "events": []any{"Deliver", "Fail", "FilterAsSpam"}}}},
		{"a continue token", map[string]any{"continue": "eyJ2IjoxfQ", "senderAddresses": []any{"*@example.com"}}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := newTrace(ns, fmt.Sprintf("ok-%d", i), tc.spec)
			if err := env.Client.Create(ctx(t), obj); err != nil {
				t.Fatalf("rejected a valid MessageTrace: %v", err)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		obj := newTrace(ns, "defaults", map[string]any{"subject": map[string]any{"value": "x"}})
		if err := env.Client.Create(ctx(t), obj); err != nil {
			t.Fatal(err)
		}
		var mt v1alpha1.MessageTrace
		if err := env.Client.Get(ctx(t), client.ObjectKeyFromObject(obj), &mt); err != nil {
			t.Fatal(err)
		}
		if mt.Spec.ResultLimit != 500 || mt.Spec.Direction != "All" || mt.Spec.Subject.Match != "Contains" {
			t.Errorf("defaults not applied: resultLimit=%d direction=%q match=%q", mt.Spec.ResultLimit, mt.Spec.Direction, mt.Spec.Subject.Match)
		}
	})
}

func TestInvalidObjectsAreRejectedWithTheirMessage(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	const (
		addrMsg   = "an address pattern must look like local@domain"
		ipMsg     = "must be an IP address or a CIDR"
		windowMsg = "window must be a duration such as 48h, 90m or 7d, at most 90d"
	)
	cases := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"sender without @", map[string]any{"senderAddresses": []any{"foo"}}, addrMsg},
		{"sender with two @", map[string]any{"senderAddresses": []any{"a@b@c"}}, addrMsg},
		{"sender with a space", map[string]any{"senderAddresses": []any{"a b@x"}}, addrMsg},
		{"recipient with empty domain", map[string]any{"recipientAddresses": []any{"user@"}}, addrMsg},
		{"recipient with empty local part", map[string]any{"recipientAddresses": []any{"@example.com"}}, addrMsg},
		{"empty address", map[string]any{"recipientAddresses": []any{""}}, "at least 1 chars long"},
		{"address too long", map[string]any{"recipientAddresses": []any{strings.Repeat("a", 310) + "@example.com"}}, "320"},
		{"101 senders", map[string]any{"senderAddresses": addresses(101)}, "must have at most 100 items"},
		{"101 recipients", map[string]any{"recipientAddresses": addresses(101)}, "must have at most 100 items"},
		{"details without a message", map[string]any{"details": map[string]any{"recipient": "a@example.com"}}, "details needs messageTraceId"},
		{"an event type in lower case", map[string]any{"details": map[string]any{"messageTraceId": "m1", "events": []any{"deliver"}}}, "should match"},
		{"21 event types", map[string]any{"details": map[string]any{"messageTraceId": "m1", "events": func() []any {
			var out []any
			for i := range 21 {
				out = append(out, "Type"+strings.Repeat("x", i))
			}
			return out
		}()}}, "must have at most 20 items"},
		{"a continue token too long", map[string]any{"continue": strings.Repeat("a", 4097)}, "4096"},
		{"end without start", map[string]any{"endTime": "2026-01-03T00:00:00Z"}, "endTime requires startTime"},
		{"end before start", map[string]any{"startTime": "2026-01-03T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}, "endTime must be after startTime"},
		{"end equal to start", map[string]any{"startTime": "2026-01-03T00:00:00Z", "endTime": "2026-01-03T00:00:00Z"}, "endTime must be after startTime"},
		{"range over 90 days", map[string]any{"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-04-01T00:00:01Z"}, "the time range can be at most 90 days"},
		{"window with start", map[string]any{"window": "48h", "startTime": "2026-01-01T00:00:00Z"}, "window is relative to the trace's creation"},
		{"window with start and end", map[string]any{"window": "48h", "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-02T00:00:00Z"}, "window is relative to the trace's creation"},
		{"window 0s", map[string]any{"window": "0s"}, windowMsg},
		{"negative window", map[string]any{"window": "-1h"}, windowMsg},
		{"window 0s", map[string]any{"window": "0s"}, windowMsg},
		{"window 0d", map[string]any{"window": "0d"}, windowMsg},
		{"negative window", map[string]any{"window": "-1h"}, windowMsg},
		{"window over 90 days", map[string]any{"window": "2161h"}, windowMsg},
		{"window of 91 days", map[string]any{"window": "91d"}, windowMsg},
		{"window a second over 90 days", map[string]any{"window": "90d1s"}, windowMsg},
		{"window not a duration", map[string]any{"window": "two days"}, windowMsg},
		{"window abc", map[string]any{"window": "abc"}, windowMsg},
		{"window with hours before days", map[string]any{"window": "12h1d"}, windowMsg},
		{"window in milliseconds", map[string]any{"window": "500ms"}, windowMsg},
		{"empty window", map[string]any{"window": ""}, windowMsg},
		{"startTime not a time", map[string]any{"startTime": "yesterday"}, "startTime"},
		{"bad original client IP", map[string]any{"originalClientIP": "300.1.2.3"}, ipMsg},
		{"bad from IP", map[string]any{"fromIP": "example.com"}, ipMsg},
		{"bad to CIDR", map[string]any{"toIP": "203.0.113.0/33"}, ipMsg},
		{"unknown status", map[string]any{"deliveryStatuses": []any{"Bounced"}}, `Unsupported value: "Bounced"`},
		{"duplicate status", map[string]any{"deliveryStatuses": []any{"Failed", "Failed"}}, "Duplicate value"},
		{"unknown direction", map[string]any{"direction": "Sideways"}, `Unsupported value: "Sideways"`},
		{"unknown subject match", map[string]any{"subject": map[string]any{"value": "x", "match": "Regex"}}, `Unsupported value: "Regex"`},
		{"result limit 0", map[string]any{"resultLimit": int64(0)}, "should be greater than or equal to 1"},
		{"result limit 1001", map[string]any{"resultLimit": int64(1001)}, "should be less than or equal to 1000"},
		{"empty subject", map[string]any{"subject": map[string]any{"value": ""}}, "at least 1 chars long"},
		{"subject too long", map[string]any{"subject": map[string]any{"value": strings.Repeat("s", 257)}}, "256"},
		{"subject without value", map[string]any{"subject": map[string]any{"match": "Contains"}}, "spec.subject.value: Required value"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := newTrace(ns, fmt.Sprintf("bad-%d", i), tc.spec)
			err := env.Client.Create(ctx(t), obj)
			if err == nil {
				t.Fatalf("accepted an invalid MessageTrace (spec %v); want an error containing %q", tc.spec, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
}

func TestSpecIsImmutable(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	const msg = "spec is immutable: create a new MessageTrace to trace something else"

	mt := &v1alpha1.MessageTrace{}
	mt.Namespace, mt.Name = ns, "immutable"
	mt.Spec.SenderAddresses = []v1alpha1.AddressPattern{"*@example.com"}
	if err := env.Client.Create(ctx(t), mt); err != nil {
		t.Fatal(err)
	}

	t.Run("update", func(t *testing.T) {
		changed := mt.DeepCopy()
		changed.Spec.SenderAddresses = []v1alpha1.AddressPattern{"*@example.org"}
		err := env.Client.Update(ctx(t), changed)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Fatalf("spec update: got %v, want an error containing %q", err, msg)
		}
	})
	t.Run("merge patch", func(t *testing.T) {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"resultLimit":7}}`))
		err := env.Client.Patch(ctx(t), mt.DeepCopy(), patch)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Fatalf("spec patch: got %v, want an error containing %q", err, msg)
		}
	})
	t.Run("metadata and status may change", func(t *testing.T) {
		var cur v1alpha1.MessageTrace
		if err := env.Client.Get(ctx(t), client.ObjectKeyFromObject(mt), &cur); err != nil {
			t.Fatal(err)
		}
		cur.Labels = map[string]string{"team": "mail"}
		if err := env.Client.Update(ctx(t), &cur); err != nil {
			t.Fatalf("label update refused: %v", err)
		}
		cur.Status.Phase = v1alpha1.PhaseRunning
		if err := env.Client.Status().Update(ctx(t), &cur); err != nil {
			t.Fatalf("status update refused: %v", err)
		}
	})
	t.Run("adding a spec to an object created without one", func(t *testing.T) {
		bare := newTrace(ns, "bare", nil)
		if err := env.Client.Create(ctx(t), bare); err != nil {
			t.Fatal(err)
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"window":"1h"}}`))
		err := env.Client.Patch(ctx(t), bare, patch)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Fatalf("adding spec: got %v, want an error containing %q", err, msg)
		}
	})
}

// TestPrinterColumns checks what `kubectl get mt` shows: the story of a trace
// (phase, range, matches, rows shown, the Succeeded reason).
func TestPrinterColumns(t *testing.T) {
	env := kubetest.Get(t)
	var crd apiextensionsv1.CustomResourceDefinition
	if err := env.Client.Get(ctx(t), client.ObjectKey{Name: "messagetraces.mailtrace.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	if got := crd.Spec.Names.ShortNames; len(got) != 1 || got[0] != "mt" {
		t.Errorf("short names %v, want [mt]", got)
	}
	want := map[string]string{
		"Phase":   ".status.phase",
		"Range":   ".status.timeRange.duration",
		"Matches": ".status.totalMatches",
		"Shown":   ".status.returnedRows",
		"Reason":  `.status.conditions[?(@.type=="Succeeded")].reason`,
		"Age":     ".metadata.creationTimestamp",
	}
	for _, v := range crd.Spec.Versions {
		got := map[string]string{}
		for _, c := range v.AdditionalPrinterColumns {
			got[c.Name] = c.JSONPath
		}
		for name, path := range want {
			if got[name] != path {
				t.Errorf("%s: column %q has path %q, want %q", v.Name, name, got[name], path)
			}
		}
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s: no status subresource", v.Name)
		}
	}
}

// TestWindowAgreesWithTheCLIParser: the API server accepts a window exactly
// when the CLIs' parser (internal/duration, behind --since) reads it as a
// positive duration of at most 90 days, and the typed client (the manager's)
// reads back the duration the parser gives.
func TestWindowAgreesWithTheCLIParser(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	for i, w := range []string{
		"48h", "90m", "7d", "90d", "91d", "1d12h", "1.5d", "89d23h59m59s", "90d1s", "90.000001d", "90.00001d",
		"2160h", "2160h0m1s", "2160h0m0.001s", "2159h59m59.999s", "168h0m0s", "1h30m0s", "0.5s", "0.0001s", "1.000001h", "1.00001h", "1m", "0d", "0s", "-1h", "+1h", ".5h", "1h1h",
		"12h1d", "1d1d", "7D", "7 d", " 7d", "abc", "", "500ms", "99999d", "9999999h",
	} {
		d, perr := duration.Parse(w)
		wantOK := perr == nil && d > 0 && d <= v1alpha1.MaxRange
		obj := newTrace(ns, fmt.Sprintf("w-%d", i), map[string]any{"window": w})
		err := env.Client.Create(ctx(t), obj)
		if (err == nil) != wantOK {
			t.Errorf("window %q: the API server says %v; duration.Parse says %v, %v", w, err, d, perr)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "window must be a duration such as 48h, 90m or 7d, at most 90d") && !strings.Contains(err.Error(), "Too long") {
				t.Errorf("window %q refused with %q, want the window message", w, err)
			}
			continue
		}
		var mt v1alpha1.MessageTrace
		if err := env.Client.Get(ctx(t), client.ObjectKeyFromObject(obj), &mt); err != nil {
			t.Errorf("window %q: reading it back: %v", w, err)
		} else if mt.Spec.Window == nil || mt.Spec.Window.Duration != d {
			t.Errorf("window %q read back as %v, want %v", w, mt.Spec.Window, d)
		}
	}
}
