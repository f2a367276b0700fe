// A call's microphone audio as the server takes it: 16 kHz, 16-bit little-endian mono
// PCM, in 40 ms frames. Used in the audio thread (call-capture.js) and, where there is
// no AudioWorklet, on the page (call.js).
export const CALL_SAMPLE_RATE = 16000;
const FRAME_SAMPLES = 640; // 40 ms

// Takes float samples at `inputRate` and gives `onFrame(ArrayBuffer)` frames at 16 kHz:
// each output sample is the average of the input samples of its span (a box filter,
// enough to keep the high frequencies of a 44.1 or 48 kHz microphone from folding over).
export class Downsampler {
  constructor(inputRate, onFrame) {
    this.step = inputRate / CALL_SAMPLE_RATE;
    this.onFrame = onFrame;
    this.position = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  push(samples) {
    for (let i = 0; i < samples.length; i++) {
      this.sum += samples[i];
      this.count += 1;
      this.position += 1;
      if (this.position < this.step) continue;
      this.position -= this.step;
      const value = Math.max(-1, Math.min(1, this.sum / this.count));
      this.sum = 0;
      this.count = 0;
      this.frame[this.filled++] = value < 0 ? value * 32768 : value * 32767;
      if (this.filled === FRAME_SAMPLES) {
        this.onFrame(this.frame.buffer);
        this.frame = new Int16Array(FRAME_SAMPLES);
        this.filled = 0;
      }
    }
  }
}
