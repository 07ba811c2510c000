package notify

import (
	"encoding/json"
	"fmt"
	"strings"
)

// reportLocation renders a status.report as s3://bucket/key (endpoint),
// or its JSON when it has no bucket and key.
func reportLocation(raw json.RawMessage) string {
	var r struct {
		Endpoint string `json:"endpoint"`
		Bucket   string `json:"bucket"`
		Key      string `json:"key"`
		Rows     int64  `json:"rows"`
		Phase    string `json:"phase"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.Bucket == "" || r.Key == "" {
		return strings.TrimSpace(string(raw))
	}
	s := fmt.Sprintf("s3://%s/%s", r.Bucket, r.Key)
	if r.Endpoint != "" {
		s += " at " + r.Endpoint
	}
	if r.Phase != "" {
		s += fmt.Sprintf(" (%s, %d rows)", r.Phase, r.Rows)
	}
	return s
}
