// The call's microphone in the audio thread (an AudioWorklet): 16 kHz PCM16 frames
// posted to the page, which sends them on the call's WebSocket.
import { Downsampler } from "./pcm.js";

class CallCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    // `sampleRate` is the AudioContext's rate, a global of the worklet's scope.
    this.downsampler = new Downsampler(sampleRate, (frame) => this.port.postMessage(frame, [frame]));
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) this.downsampler.push(channel);
    return true;
  }
}

registerProcessor("call-capture", CallCapture);
