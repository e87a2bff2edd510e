import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { HutchError } from './errors.js';

/**
 * Seals secret values with AES-256-GCM (node:crypto): a random 96-bit nonce per write, and the
 * tenant and name as authenticated data, so a row copied to another tenant or name (or altered)
 * fails to open instead of yielding a value. The key is the server's secrets key (secrets-key.ts).
 */
export const SECRETS_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

function aad(tenant: string, name: string): Buffer {
  // NUL cannot occur in tenant or secret names: the encoding is unambiguous.
  return Buffer.from(`hutch-secret-v1\0${tenant}\0${name}`, 'utf8');
}

export class SecretCipher {
  /** Identifies the key without revealing it (the store records it to catch a wrong key file at start). */
  readonly keyId: string;

  constructor(private readonly key: Buffer) {
    if (key.length !== SECRETS_KEY_BYTES) throw new Error(`the secrets key must be ${SECRETS_KEY_BYTES} bytes, not ${key.length}`);
    this.keyId = createHmac('sha256', key).update('hutch secrets key id').digest('hex').slice(0, 16);
  }

  seal(tenant: string, name: string, value: string): { nonce: Buffer; ciphertext: Buffer } {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(tenant, name));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
    return { nonce, ciphertext: Buffer.concat([body, cipher.getAuthTag()]) };
  }

  /** The value, or an `internal` error when the row does not authenticate (another key, tenant or name; tampering). */
  open(tenant: string, name: string, nonce: Buffer, ciphertext: Buffer): string {
    try {
      if (nonce.length !== NONCE_BYTES || ciphertext.length < TAG_BYTES) throw new Error('malformed');
      const decipher = createDecipheriv('aes-256-gcm', this.key, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(tenant, name));
      decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_BYTES));
      return Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new HutchError(
        'internal',
        `secret "${name}" of tenant ${tenant} cannot be decrypted: it was written with another secrets key, or its row was altered`,
      );
    }
  }
}
