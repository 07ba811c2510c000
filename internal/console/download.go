package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mailtrace/mailtrace/api/v1alpha1"
)

// downloadTimeout bounds the wait for a DownloadRequest's URL.
const downloadTimeout = 2 * time.Minute

// download hands the browser a trace's report as `kubectl mailtrace
// download` fetches it: a DownloadRequest made with the user's rights (who
// may create one in the namespace decides), its presigned URL fetched by
// the console (so the browser needs no route to the object store), the
// bytes checked against status.report.sha256 before any reaches the
// browser, and the request deleted. A gzip report stays compressed, as its
// checksum was computed.
func (s *Server) download(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	ctx, cancel := context.WithTimeout(r.Context(), downloadTimeout+time.Minute)
	defer cancel()
	dr := &v1alpha1.DownloadRequest{ObjectMeta: metav1.ObjectMeta{Namespace: rq.ns, GenerateName: "console-"},
		Spec: v1alpha1.DownloadRequestSpec{MessageTraceName: name, TTL: &metav1.Duration{Duration: 5 * time.Minute}}}
	if err := rq.c.Create(ctx, dr); err != nil {
		s.kubeFail(w, r, rq, err)
		return
	}
	defer func() { _ = rq.c.Delete(context.Background(), dr) }() // the URL is no longer needed
	got, err := s.waitDownload(ctx, rq.c, client.ObjectKeyFromObject(dr))
	if err != nil {
		s.fail(w, r, rq, http.StatusBadGateway, "error.download", err)
		return
	}
	rep := got.Status.Report
	if rep == nil {
		rep = &v1alpha1.DownloadedReport{}
	}
	f, sum, err := fetchReport(ctx, got.Status.DownloadURL, rep.SHA256)
	if err != nil {
		s.fail(w, r, rq, http.StatusBadGateway, "error.download", err)
		return
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	file, ctype := name+".csv", "text/csv; charset=utf-8"
	if rep.ContentEncoding == "gzip" {
		file, ctype = name+".csv.gz", "application/gzip"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", file))
	w.Header().Set("X-Report-SHA256", sum)
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (s *Server) waitDownload(ctx context.Context, c client.Client, key client.ObjectKey) (*v1alpha1.DownloadRequest, error) {
	deadline := time.Now().Add(downloadTimeout)
	for {
		cur := &v1alpha1.DownloadRequest{}
		if err := c.Get(ctx, key, cur); err != nil {
			return nil, err
		}
		switch cur.Status.Phase {
		case v1alpha1.DownloadReady:
			return cur, nil
		case v1alpha1.DownloadFailed, v1alpha1.DownloadExpired:
			if cond := cur.Condition(v1alpha1.ConditionReady); cond != nil {
				return nil, fmt.Errorf("%s: %s", cond.Reason, cond.Message)
			}
			return nil, fmt.Errorf("the download request is %s", cur.Status.Phase)
		}
		if cond, mayClear := cur.Blocked(); cond != nil && !mayClear {
			return nil, fmt.Errorf("%s: %s", cond.Reason, cond.Message)
		}
		if time.Now().After(deadline) {
			why := ""
			if cond := cur.Condition(v1alpha1.ConditionReady); cond != nil {
				why = fmt.Sprintf(" (%s: %s)", cond.Reason, cond.Message)
			}
			return nil, fmt.Errorf("no download URL after %s%s", downloadTimeout, why)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.opts.Poll):
		}
	}
}

// fetchReport GETs the presigned url into a temporary file, as stored (no
// transparent gunzip), and checks its SHA-256 against want (when set). The
// file is open at its start; the caller closes and removes it.
func fetchReport(ctx context.Context, url, want string) (*os.File, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetching the report: %w", redactURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, "", fmt.Errorf("fetching the report: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	f, err := os.CreateTemp("", "mailtrace-report-*")
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err == nil && want != "" && sum != want {
		err = fmt.Errorf("the report fetched (%d bytes) has sha256 %s, not the %s its trace recorded", n, sum, want)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, "", err
	}
	return f, sum, nil
}

// redactURL keeps a presigned URL (a credential until it expires) out of
// an error that will be shown and logged.
func redactURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return errors.New("request failed")
}
