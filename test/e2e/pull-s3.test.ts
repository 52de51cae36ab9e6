// The pull path, unchanged, on S3-compatible storage (a real S3-protocol server on loopback):
// once with blob GETs redirected to presigned URLs (skopeo follows them to the object store),
// once streamed through the API.
import { startS3Server } from '../helpers/s3-server.js';
import { pullSuite } from './pull-suite.js';

for (const presigned of [true, false]) {
  pullSuite(`S3 storage, S3_USE_PRESIGNED_URLS=${presigned}`, async () => {
    const s3 = await startS3Server();
    return { env: { ...s3.env, S3_USE_PRESIGNED_URLS: String(presigned) }, cleanup: () => s3.stop() };
  }, { blobRedirects: presigned });
}
