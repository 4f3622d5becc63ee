"""Answer media, as every service sees it: what each platform accepts
(:mod:`.profiles`, pure), what a file is (:mod:`.probe`, PyAV) and timed
subtitles (:mod:`.subtitles`, pure). The media worker makes renditions with
them, the triage web probes uploads, the publisher checks what it posts, the
sandbox enforces the same limits."""
