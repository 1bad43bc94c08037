-- A rotated refresh token keeps its successor sealed under a key derived from the rotated token
-- itself: a retry within the grace window gets the same successor back, and the database alone
-- does not reveal it.
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed BLOB;
