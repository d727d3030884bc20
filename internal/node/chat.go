package node

import (
	"time"

	"courier/internal/bus"
	"courier/internal/chat"
)

// chatRenderer renders chat requests for the workers with the model's
// template (package chat; an empty template takes its plain fallback),
// ending with an opened assistant turn.
func chatRenderer(tmpl string, msgs []bus.ChatMessage, bos, eos string, kwargs map[string]any) (string, error) {
	cm := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		cm[i] = chat.Message{Role: m.Role, Content: m.Content, ToolCallID: m.ToolCallID}
		for _, c := range m.ToolCalls {
			cm[i].ToolCalls = append(cm[i].ToolCalls, chat.ToolCall{ID: c.ID, Name: c.Name, Arguments: c.Arguments})
		}
	}
	return chat.Render(tmpl, cm, chat.Options{
		BOSToken: bos, EOSToken: eos, AddGenerationPrompt: true,
		Kwargs: kwargs, Now: time.Now(),
	})
}
