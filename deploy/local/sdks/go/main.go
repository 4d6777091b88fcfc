// A driver for Segment's official Go SDK (analytics-go/v3), used by the e2e tests: it reads
// messages as JSON lines on stdin ({"type": "track"|"identify"|"group", ...}), sends them
// with the SDK to the endpoint given as the first argument, and prints one JSON line per
// result the SDK reports ({"ok": true} or {"error": "..."}) before exiting.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"
)

type message struct {
	Type       string                 `json:"type"`
	MessageID  string                 `json:"messageId"`
	UserID     string                 `json:"userId"`
	Event      string                 `json:"event"`
	GroupID    string                 `json:"groupId"`
	Timestamp  time.Time              `json:"timestamp"`
	Properties map[string]interface{} `json:"properties"`
	Traits     map[string]interface{} `json:"traits"`
	Context    map[string]interface{} `json:"context"`
}

type reporter struct{ out *json.Encoder }

func (r reporter) Success(analytics.Message) { r.out.Encode(map[string]bool{"ok": true}) }
func (r reporter) Failure(_ analytics.Message, err error) {
	r.out.Encode(map[string]string{"error": err.Error()})
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: segment-go-driver ENDPOINT WRITE_KEY < messages.ndjson")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	client, err := analytics.NewWithConfig(os.Args[2], analytics.Config{
		Endpoint:  os.Args[1],
		BatchSize: 20,
		Interval:  50 * time.Millisecond,
		Callback:  reporter{out},
		RetryAfter: func(int) time.Duration { return 10 * time.Millisecond },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		var m message
		if err := json.Unmarshal(scanner.Bytes(), &m); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var ctx *analytics.Context
		if group, ok := m.Context["groupId"].(string); ok {
			ctx = &analytics.Context{Extra: map[string]interface{}{"groupId": group}}
		}
		switch m.Type {
		case "track":
			err = client.Enqueue(analytics.Track{MessageId: m.MessageID, UserId: m.UserID,
				Event: m.Event, Timestamp: m.Timestamp, Properties: m.Properties, Context: ctx})
		case "identify":
			err = client.Enqueue(analytics.Identify{MessageId: m.MessageID, UserId: m.UserID,
				Timestamp: m.Timestamp, Traits: m.Traits, Context: ctx})
		case "group":
			err = client.Enqueue(analytics.Group{MessageId: m.MessageID, UserId: m.UserID,
				GroupId: m.GroupID, Timestamp: m.Timestamp, Traits: m.Traits, Context: ctx})
		default:
			err = fmt.Errorf("unsupported type %q", m.Type)
		}
		if err != nil {
			out.Encode(map[string]string{"error": err.Error()})
		}
	}
	if err := client.Close(); err != nil {
		out.Encode(map[string]string{"error": err.Error()})
	}
}
