"""The memo rule: code versions of registry functions (:mod:`.code`) and the reuse decision (:mod:`.rule`)."""
