package crd

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
	"github.com/mailtrace/mailtrace/internal/testutil/kubetest"
)

func newSchedule(ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "MessageTraceSchedule",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec":       spec,
	}}
}

func scheduleSpec(over map[string]any) map[string]any {
	s := map[string]any{"schedule": "0 6 * * 1", "window": "168h", "template": map[string]any{}}
	maps.Copy(s, over)
	return s
}

// The MessageTraceSchedule schema: defaults, and each rule rejecting what it
// is meant to reject with its message.
func TestScheduleValidation(t *testing.T) {
	env := kubetest.Get(t)
	ns := kubetest.Namespace(t, env.Client)
	good := []map[string]any{
		scheduleSpec(nil),
		scheduleSpec(map[string]any{"schedule": "@daily", "timeZone": "America/New_York", "window": "24h"}),
		scheduleSpec(map[string]any{"window": "7d"}),
		scheduleSpec(map[string]any{"schedule": "0 6 1 */3 *", "window": "90d"}),
		scheduleSpec(map[string]any{"window": "1d12h"}),
		scheduleSpec(map[string]any{"schedule": "*/15 8-18 * * 1-5", "window": "15m", "concurrencyPolicy": "Replace",
			"startingDeadlineSeconds": int64(300), "suspend": true, "successfulRunsHistoryLimit": int64(0), "failedRunsHistoryLimit": int64(0)}),
		scheduleSpec(map[string]any{"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"team": "mail"}},
			"spec": map[string]any{"deliveryStatuses": []any{"Failed"}, "notify": map[string]any{
				"webhook": map[string]any{"url": "https://hooks.example.com/x", "secretRef": map[string]any{"name": "s"}},
				"email":   map[string]any{"to": []any{"ops@example.com"}}}}}}),
	}
	// A saved query: no schedule at all.
	savedQuery := scheduleSpec(map[string]any{"window": "7d"})
	delete(savedQuery, "schedule")
	good = append(good, savedQuery)
	for i, spec := range good {
		obj := newSchedule(ns, fmt.Sprintf("good-%d", i), spec)
		if err := env.Client.Create(ctx(t), obj); err != nil {
			t.Errorf("valid schedule %v refused: %v", spec, err)
		}
	}
	// Defaults.
	got := &v1alpha1.MessageTraceSchedule{}
	if err := env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "good-0"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.TimeZone != "UTC" || got.Spec.ConcurrencyPolicy != v1alpha1.ForbidConcurrent ||
		got.Spec.SuccessfulRunsHistoryLimit == nil || *got.Spec.SuccessfulRunsHistoryLimit != 10 ||
		got.Spec.FailedRunsHistoryLimit == nil || *got.Spec.FailedRunsHistoryLimit != 3 {
		t.Errorf("defaults: %+v", got.Spec)
	}

	const windowMsg = "window must be a duration such as 24h, 90m or 7d, from 1m to 90d"
	// A window in days reads back as its duration (the manager's client).
	week := &v1alpha1.MessageTraceSchedule{}
	if err := env.Client.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "good-2"}, week); err != nil || week.Spec.Window.Duration != 7*24*time.Hour {
		t.Errorf("window 7d read back as %v (%v), want 168h", week.Spec.Window, err)
	}

	bad := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"4 cron fields", scheduleSpec(map[string]any{"schedule": "0 6 * *"}), "schedule must have 5 cron fields"},
		{"6 cron fields", scheduleSpec(map[string]any{"schedule": "0 0 6 * * 1"}), "schedule must have 5 cron fields"},
		{"time zone in the schedule", scheduleSpec(map[string]any{"schedule": "CRON_TZ=UTC 0 6 * * 1"}), "schedule must have 5 cron fields"},
		{"@every", scheduleSpec(map[string]any{"schedule": "@every 1h"}), "schedule must have 5 cron fields"},
		{"an empty schedule (leave it out for a saved query)", scheduleSpec(map[string]any{"schedule": ""}), "at least 1 chars long"},
		{"window 0", scheduleSpec(map[string]any{"window": "0s"}), windowMsg},
		{"window under a minute", scheduleSpec(map[string]any{"window": "59s"}), windowMsg},
		{"window over 90 days", scheduleSpec(map[string]any{"window": "2161h"}), windowMsg},
		{"window of 91 days", scheduleSpec(map[string]any{"window": "91d"}), windowMsg},
		{"window abc", scheduleSpec(map[string]any{"window": "abc"}), windowMsg},
		{"template with a window", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"window": "24h"}}}), "the template has no time range"},
		{"template with a startTime", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"startTime": "2026-01-01T00:00:00Z"}}}), "the template has no time range"},
		{"template with a continue token", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"continue": "eyJ2IjoxfQ"}}}), "the template has no continue token"},
		{"unknown policy", scheduleSpec(map[string]any{"concurrencyPolicy": "Queue"}), `Unsupported value: "Queue"`},
		{"deadline 0", scheduleSpec(map[string]any{"startingDeadlineSeconds": int64(0)}), "should be greater than or equal to 1"},
		{"negative history", scheduleSpec(map[string]any{"failedRunsHistoryLimit": int64(-1)}), "should be greater than or equal to 0"},
		{"no window", map[string]any{"schedule": "0 6 * * 1", "template": map[string]any{}}, "spec.window: Required value"},
		{"bad template filter", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"senderAddresses": []any{"nobody"}}}}), "an address pattern must look like local@domain"},
		{"empty notify", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"notify": map[string]any{}}}}), "notify needs a webhook or an email"},
		{"ftp webhook", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"notify": map[string]any{"webhook": map[string]any{"url": "ftp://x.example/"}}}}}), "url must be an http or https URL"},
		{"bad email", scheduleSpec(map[string]any{"template": map[string]any{"spec": map[string]any{"notify": map[string]any{"email": map[string]any{"to": []any{"Ops <ops@example.com>"}}}}}}), "must be a plain address"},
	}
	for i, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := env.Client.Create(ctx(t), newSchedule(ns, fmt.Sprintf("bad-%d", i), tc.spec))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	t.Run("name over 63 characters", func(t *testing.T) {
		err := env.Client.Create(ctx(t), newSchedule(ns, strings.Repeat("a", 64), scheduleSpec(nil)))
		if err == nil || !strings.Contains(err.Error(), "at most 63 characters") {
			t.Fatalf("error %v", err)
		}
	})
}

// kubectl get mts shows schedule, time zone, suspend, last schedule, next and age.
func TestSchedulePrinterColumns(t *testing.T) {
	env := kubetest.Get(t)
	var crd apiextensionsv1.CustomResourceDefinition
	if err := env.Client.Get(ctx(t), client.ObjectKey{Name: "messagetraceschedules.mailtrace.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	if got := crd.Spec.Names.ShortNames; len(got) != 1 || got[0] != "mts" {
		t.Errorf("short names %v, want [mts]", got)
	}
	want := []string{"Schedule=.spec.schedule", "TimeZone=.spec.timeZone", "Suspend=.spec.suspend",
		"Last Schedule=.status.lastScheduleTime", "Next=.status.nextScheduleTime", "Age=.metadata.creationTimestamp"}
	for _, v := range crd.Spec.Versions {
		var got []string
		for _, c := range v.AdditionalPrinterColumns {
			if c.Priority == 0 {
				got = append(got, c.Name+"="+c.JSONPath)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: default columns %v, want %v", v.Name, got, want)
		}
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s: no status subresource", v.Name)
		}
	}
}
