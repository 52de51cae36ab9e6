// The configured storage backend, opened from configuration.

import type { StorageConfig } from '../config.js';
import { FilesystemStorage } from './filesystem.js';
import type { Storage } from './storage.js';

export function openStorage(config: StorageConfig): Storage {
  switch (config.backend) {
    case 'filesystem':
      return new FilesystemStorage(config.path);
    case 's3':
      throw new Error('NIXERY_STORAGE_BACKEND=s3 is not implemented yet; use filesystem');
  }
}
