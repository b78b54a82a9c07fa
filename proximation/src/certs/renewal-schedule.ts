/**
 * When a certificate is due for renewal, as a pure function of its dates, so every rule is tested
 * without waiting. Without a CA's renewal window (ARI), Let's Encrypt's advice: renew when a third
 * of the lifetime is left, or half of it for certificates that live less than 10 days.
 */
const TEN_DAYS_MS = 10 * 24 * 3600 * 1000;

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** The moment renewal becomes due. */
export function renewalTime({ notBefore, notAfter }: Validity): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const leftWhenDue = lifetime < TEN_DAYS_MS ? lifetime / 2 : lifetime / 3;
  return new Date(notAfter.getTime() - leftWhenDue);
}
