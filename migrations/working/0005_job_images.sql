-- The images each job pulled (by pull, or by run of a missing image): `bdocker images` lists
-- them and `bdocker rmi` may remove only those, and not while another live job pulled them too.
CREATE TABLE job_images (
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    reference   TEXT NOT NULL,
    pulled_at   REAL NOT NULL,
    PRIMARY KEY (job_id, reference)
) WITHOUT ROWID;
CREATE INDEX job_images_reference ON job_images(reference);
