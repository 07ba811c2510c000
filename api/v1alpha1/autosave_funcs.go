package v1alpha1

// Autosaved queries: the traces a person starts from the console or
// `kubectl mailtrace run` carry who made them, and the manager keeps only
// each user's newest DefaultAutosaveKeep of them per namespace.
//
// Who made a trace cannot be forged: the ValidatingAdmissionPolicy of
// config/admission (installed with the operator) lets a MessageTrace be
// created with AnnotationCreatedBy only when its value is the requesting
// user's own name (request.userInfo.username), requires the annotation on
// a trace labelled LabelAutosave, and refuses any change of either on
// update. A client sets both (the plugin learns its user name from a
// SelfSubjectReview); the API server checks them.
const (
	// LabelAutosave marks an autosaved query ("true"): the manager keeps
	// only the newest of each user's (see AnnotationCreatedBy).
	LabelAutosave = "mailtrace.io/autosave"
	// AnnotationCreatedBy is the user name of who created the trace,
	// checked by the API server against the request's user.
	AnnotationCreatedBy = "mailtrace.io/created-by"
	// DefaultAutosaveKeep is how many autosaved queries of one user the
	// manager keeps in a namespace (the source product's "last ten").
	DefaultAutosaveKeep = 10
)

// CreatedBy returns the user name the API server checked at creation, or "".
func (mt *MessageTrace) CreatedBy() string {
	return mt.Annotations[AnnotationCreatedBy]
}

// IsAutosaved reports whether the trace is an autosaved query of a known user.
func (mt *MessageTrace) IsAutosaved() bool {
	return mt.Labels[LabelAutosave] == "true" && mt.CreatedBy() != ""
}

// IsAutosavedBy reports whether the trace is one of user's autosaved queries.
func (mt *MessageTrace) IsAutosavedBy(user string) bool {
	return user != "" && mt.IsAutosaved() && mt.CreatedBy() == user
}

// MarkAutosaved labels the trace as an autosaved query of user (the API
// server refuses it unless user is the requester's own name).
func (mt *MessageTrace) MarkAutosaved(user string) {
	if mt.Labels == nil {
		mt.Labels = map[string]string{}
	}
	if mt.Annotations == nil {
		mt.Annotations = map[string]string{}
	}
	mt.Labels[LabelAutosave] = "true"
	mt.Annotations[AnnotationCreatedBy] = user
}
