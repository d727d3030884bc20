package model

// MaxOut returns the most rows of one batch that may ask for logits.
func (s *State) MaxOut() int { return s.maxOut }
