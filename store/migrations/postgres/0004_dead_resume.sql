-- Where a dead exchange resumes (issue #8): the state, reason and problems
-- it had when it was dead-lettered, as JSON {"state","reason","problems"},
-- '' when it is not dead. The engine's steps decode the payload by state,
-- so a retry must put the exchange back exactly where it died. Codes and
-- problem descriptions only, never a personal value (as the columns it copies).
ALTER TABLE exchange ADD COLUMN resume TEXT NOT NULL DEFAULT '';
