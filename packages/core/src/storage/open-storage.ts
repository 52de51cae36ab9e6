// The configured storage backend, opened from configuration.

import type { StorageConfig } from '../config.js';
import { FilesystemStorage } from './filesystem.js';
import { S3Storage } from './s3.js';
import type { Storage } from './storage.js';

export function openStorage(config: StorageConfig): Storage {
  switch (config.backend) {
    case 'filesystem':
      return new FilesystemStorage(config.path);
    case 's3':
      // Credentials come from the SDK's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
      // AWS_PROFILE, web identity, instance or task roles); they never pass through our config.
      return new S3Storage({
        bucket: config.bucket,
        endpoint: config.endpoint,
        region: config.region,
        forcePathStyle: config.forcePathStyle,
      });
  }
}
